import math

import pytest
import torch
import torch.nn.functional as F

from ece_lightning.losses import EarlyLearningRegularization, build_loss


def _elr(**kwargs):
    loss = EarlyLearningRegularization(**kwargs).train()
    return loss


def test_lambda_zero_is_cross_entropy():
    logits, target = torch.randn(2, 3, 4, 5), torch.randint(0, 3, (2, 4, 5))
    pixels = torch.arange(40).reshape(2, 4, 5)
    loss = _elr(lam=0.0)
    loss.allocate(40, 3)
    torch.testing.assert_close(loss(logits, target, pixels=pixels), F.cross_entropy(logits, target))
    binary, soft = torch.randn(2, 4, 5), torch.randint(0, 2, (2, 4, 5)).float()
    torch.testing.assert_close(_elr(lam=0.0)(binary, soft, pixels=pixels), F.binary_cross_entropy_with_logits(binary, soft))


def test_the_buffer_update_rule_on_a_hand_computed_case():
    # p = softmax(0, ln 3) = (0.25, 0.75); beta 0.5; t starts at 0.
    logits, target, pixels = torch.tensor([[[0.0], [math.log(3.0)]]]), torch.tensor([[1]]), torch.tensor([[1]])
    loss = _elr(beta=0.5, lam=2.0, reduction="none")
    loss.allocate(3, 2)
    first = loss(logits, target, pixels=pixels)  # t = (0.125, 0.375); <t, p> = 0.3125
    torch.testing.assert_close(loss.targets[1].float(), torch.tensor([0.125, 0.375]))
    torch.testing.assert_close(first, torch.tensor([[-math.log(0.75) + 2.0 * math.log(1 - 0.3125)]]))
    second = loss(logits, target, pixels=pixels)  # t = (0.1875, 0.5625); <t, p> = 0.46875
    torch.testing.assert_close(loss.targets[1].float(), torch.tensor([0.1875, 0.5625]))
    torch.testing.assert_close(second, torch.tensor([[-math.log(0.75) + 2.0 * math.log(1 - 0.46875)]]))
    assert loss.targets[0].abs().sum() == 0 and loss.targets[2].abs().sum() == 0  # other pixels untouched


def test_binary_targets_hold_background_and_object_probabilities():
    loss = _elr(beta=0.0, lam=1.0, reduction="none")
    loss.allocate(2, 2)
    value = loss(torch.tensor([0.0, math.log(3.0)]), torch.tensor([0.0, 1.0]), pixels=torch.tensor([0, 1]))
    torch.testing.assert_close(loss.targets.float(), torch.tensor([[0.5, 0.5], [0.25, 0.75]]))
    agreement = torch.tensor([0.5 * 0.5 + 0.5 * 0.5, 0.75 * 0.75 + 0.25 * 0.25])
    ce = torch.tensor([math.log(2.0), -math.log(0.75)])
    torch.testing.assert_close(value, ce + torch.log(1 - agreement))


def test_padding_is_left_out_and_eval_mode_is_plain_ce():
    loss = _elr(beta=0.5, lam=3.0, reduction="none")
    loss.allocate(4, 2)
    logits, target = torch.randn(1, 2, 1, 2), torch.tensor([[[1, 0]]])
    out = loss(logits, target, pixels=torch.tensor([[[2, -1]]]))
    ce = F.cross_entropy(logits, target, reduction="none")
    assert out[0, 0, 1] == ce[0, 0, 1] and out[0, 0, 0] != ce[0, 0, 0]
    before = loss.targets.clone()
    loss.eval()
    torch.testing.assert_close(loss(logits, target, pixels=torch.tensor([[[2, 3]]])), ce)
    assert torch.equal(loss.targets, before)


def test_uint8_storage_quantises_to_1_over_255():
    loss = _elr(beta=0.0, lam=1.0, storage="uint8")
    loss.allocate(1, 2)
    loss(torch.tensor([[[0.0], [math.log(3.0)]]]), torch.tensor([[1]]), pixels=torch.tensor([[0]]))
    assert loss.targets.dtype == torch.uint8 and loss.targets[0].tolist() == [64, 191]  # 0.25, 0.75 of 255
    assert loss.buffer_bytes == 2


def test_buffer_survives_a_state_dict_round_trip_into_a_fresh_loss():
    loss = _elr(beta=0.5)
    loss.allocate(10, 2)
    loss(torch.randn(1, 2, 2, 5), torch.randint(0, 2, (1, 2, 5)), pixels=torch.arange(10).reshape(1, 2, 5))
    fresh = build_loss("elr", beta=0.5)
    fresh.load_state_dict(loss.state_dict())
    assert fresh.targets.dtype == torch.float16 and torch.equal(fresh.targets, loss.targets)


def test_missing_or_unallocated_pixel_state_is_explained():
    logits, target = torch.randn(1, 2, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="pixel ids"):
        _elr()(logits, target)
    with pytest.raises(RuntimeError, match="allocate"):
        _elr()(logits, target, pixels=torch.arange(4).reshape(1, 2, 2))
    for bad, name in (({"beta": 1.0}, "beta"), ({"lam": -1}, "lam"), ({"storage": "int4"}, "storage")):
        with pytest.raises(ValueError, match=name):
            EarlyLearningRegularization(**bad)


def _ddp_worker(rank: int, world: int, init_file: str, results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    loss = _elr(beta=0.0, lam=1.0)
    loss.allocate(4, 2)
    # Rank 0 sees pixels 0 and 1, rank 1 pixels 2 and 3 (and a padded one).
    pixels = torch.tensor([[[0, 1, -1]]]) if rank == 0 else torch.tensor([[[2, 3, -1]]])
    logits = torch.full((1, 2, 1, 3), float(rank))
    logits[:, 1] = torch.tensor([0.0, math.log(3.0), 0.0]) + rank
    loss(logits, torch.zeros(1, 1, 3, dtype=torch.long), pixels=pixels)
    results[rank] = loss.targets.float().clone()
    dist.destroy_process_group()


def test_under_ddp_every_rank_applies_every_rank_s_updates(tmp_path):
    import torch.multiprocessing as mp

    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), results), nprocs=2, join=True)
    assert torch.equal(results[0], results[1])
    torch.testing.assert_close(results[0], torch.tensor([[0.5, 0.5], [0.25, 0.75], [0.5, 0.5], [0.25, 0.75]]))


def test_a_pixel_seen_twice_in_a_step_gets_the_mean_of_its_predictions_once():
    loss = _elr(beta=0.5, lam=1.0)
    loss.allocate(2, 2)
    logits = torch.stack([torch.zeros(2), torch.tensor([0.0, math.log(3.0)])]).T.reshape(2, 2, 1)  # p1 = .5, .75
    loss(logits, torch.zeros(2, 1, dtype=torch.long), pixels=torch.tensor([[0], [0]]))
    torch.testing.assert_close(loss.targets[0].float(), 0.5 * torch.tensor([0.375, 0.625]))


def test_several_ids_per_element_update_all_and_read_their_mean():
    loss = _elr(beta=0.0, lam=1.0, reduction="none")
    loss.allocate(5, 2)
    loss.targets[4] = torch.tensor([1.0, 0.0], dtype=torch.float16)
    # One binary element covering pixels 0, 1 and a padded slot: both get (0.25, 0.75).
    loss(torch.tensor([math.log(3.0)]), torch.tensor([1.0]), pixels=torch.tensor([[0, 1, -1]]))
    torch.testing.assert_close(loss.targets[:2].float(), torch.tensor([[0.25, 0.75], [0.25, 0.75]]))
    assert loss.targets[4].tolist() == [1.0, 0.0]
