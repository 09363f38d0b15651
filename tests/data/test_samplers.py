import random

import numpy as np
import pytest
import torch

from ece_lightning.data.samplers import EpochShuffle, epoch_seed


def _order(sampler):
    items = list(sampler)
    assert len({item.epoch_seed for item in items}) == 1  # every item carries its epoch's seed
    return [item.index for item in items]


def test_order_is_a_function_of_seed_and_epoch():
    first = _order(EpochShuffle(50, seed=1, current_epoch=lambda: 3))
    assert sorted(first) == list(range(50))
    torch.manual_seed(123)  # whatever ran before does not matter
    assert _order(EpochShuffle(50, seed=1, current_epoch=lambda: 3)) == first
    assert _order(EpochShuffle(50, seed=1, current_epoch=lambda: 4)) != first
    assert _order(EpochShuffle(50, seed=2, current_epoch=lambda: 3)) != first
    sampler = EpochShuffle(50, seed=1)
    sampler.set_epoch(3)  # Lightning's hook, used without a trainer
    assert _order(sampler) == first and len(sampler) == 50


def test_epoch_start_seeds_the_process_generators():
    draws = []
    for noise in (1, 2):
        torch.manual_seed(noise)
        np.random.seed(noise)
        random.seed(noise)
        list(EpochShuffle(10, seed=5, current_epoch=lambda: 7))
        draws.append((torch.rand(3).tolist(), np.random.rand(), random.random()))
    assert draws[0] == draws[1]
    assert len({epoch_seed(s, e) for s in range(20) for e in range(50)}) == 1000


def _epoch_batches(datamodule, epochs, noise):
    """The training batches (image, target) of each epoch in ``epochs``, as Lightning drives the loader,
    with the main process's generator in a state of its own (``noise``) when each epoch's loader starts."""
    loader = datamodule.train_dataloader()
    out = {}
    for epoch in epochs:
        loader.sampler.set_epoch(epoch)
        torch.manual_seed(noise + epoch)
        out[epoch] = [(batch["image"], batch["target"]) for batch in loader]
    return out


def _datamodule(workers, persistent):
    from ece_lightning.data.datamodule import InstanceDataModule

    augment = {"enabled": True, "blur": {"p": 0.5, "kernel_sizes": [3, 5]}, "noise": {"p": 0.5, "std": 5.0},
               "rotate90": {"p": 0.5}, "hflip": {"p": 0.5}, "vflip": {"p": 0.5}, "transpose": {"p": 0.5},
               "stain": {"p": 0.5, "sigma": 0.05, "bias": 0.05}}
    datamodule = InstanceDataModule(source="synthetic", sparsity=0.5, batch_size=2, num_workers=workers,
                                        persistent_workers=persistent, num_train=4, num_val=3, num_test=1,
                                        image_size=48, crop_size=32, crops_per_epoch=8, augment=augment,
                                        loader_seed=7)
    datamodule.setup("fit")
    return datamodule


@pytest.mark.parametrize("persistent", [True, False])
def test_loader_workers_draw_the_same_epochs_after_a_restart(persistent):
    """Augmented random crops loaded by 2 worker processes: epochs 2 and 3 of a run that loaded 0..3 equal
    those of a fresh loader that starts at epoch 2 (a resumed run), and differ between epochs."""
    whole = _epoch_batches(_datamodule(2, persistent), range(4), noise=1000)
    resumed = _epoch_batches(_datamodule(2, persistent), [2, 3], noise=2000)
    for epoch in (2, 3):
        assert len(resumed[epoch]) == len(whole[epoch]) == 4
        for (image, target), (image_again, target_again) in zip(whole[epoch], resumed[epoch]):
            assert torch.equal(image, image_again) and torch.equal(target, target_again)
    assert not torch.equal(whole[2][0][0], whole[3][0][0])
    # Two workers draw differently from one another: consecutive batches are not copies.
    assert not torch.equal(whole[2][0][0], whole[2][1][0])


@pytest.mark.parametrize("size, world", [(3, 2), (5, 2), (7, 3), (1, 2), (4, 2)])
def test_evaluation_shards_cover_every_item_once(size, world):
    from torch.utils.data import DistributedSampler

    from ece_lightning.data.samplers import EvaluationShard

    shards = [EvaluationShard(list(range(size)), world, rank) for rank in range(world)]
    items = [list(shard) for shard in shards]
    assert sorted(i for part in items for i in part) == list(range(size))  # no item repeated or left out
    assert [len(shard) for shard in shards] == [len(part) for part in items]
    assert all(isinstance(shard, DistributedSampler) for shard in shards)  # so Lightning keeps it
    assert items[0] == list(range(0, size, world))


def test_validation_loader_under_ddp_uses_shards():
    from types import SimpleNamespace

    from ece_lightning.data.samplers import EvaluationShard

    datamodule = _datamodule(0, False)
    datamodule.trainer = SimpleNamespace(world_size=2, global_rank=1)
    sampler = datamodule.val_dataloader().sampler
    assert isinstance(sampler, EvaluationShard) and list(sampler) == [1]  # of 3 images: 0 and 2 on rank 0
    assert not isinstance(datamodule.train_dataloader().sampler, EvaluationShard)
    # Fewer items than processes: no process may go without any (it would stop alone); Lightning's padding stays.
    datamodule.batch_size = 4
    datamodule.trainer = SimpleNamespace(world_size=4, global_rank=0)  # 3 images
    with pytest.warns(UserWarning, match="evaluated twice"):
        assert not isinstance(datamodule.val_dataloader().sampler, EvaluationShard)


def test_ranks_share_the_order_but_not_the_draws(monkeypatch):
    import torch.distributed as dist

    single = list(EpochShuffle(20, seed=4, current_epoch=lambda: 2))
    draws = {}
    for rank in (0, 1, 2):
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
        items = list(EpochShuffle(20, seed=4, current_epoch=lambda: 2))
        assert [item.index for item in items] == [item.index for item in single]  # one order to split
        draws[rank] = (items[0].epoch_seed, torch.rand(2).tolist())
    assert draws[0][0] == single[0].epoch_seed  # rank 0 draws as a single process does
    assert len({seed for seed, _ in draws.values()}) == 3 and draws[1][1] != draws[2][1]
