import numpy as np
import pytest
import torch

from ece_lightning.data.datamodule import InstanceDataModule


def _datamodule(sparsity):
    dm = InstanceDataModule(source="synthetic", sparsity=sparsity, sparsify_seed=3, batch_size=4,
                                num_train=6, num_val=4, num_test=4, image_size=64)
    dm.setup("fit")
    return dm


def test_train_and_val_are_sparse_and_test_is_exhaustive():
    dense, sparse = _datamodule(1.0), _datamodule(0.3)
    for split in ("train", "val"):
        annotated, total = sparse.annotated_objects[split]
        assert annotated < 0.45 * total
        assert dense.annotated_objects[split] == (total, total)
    np.testing.assert_array_equal(sparse.datasets["test"].instances, dense.datasets["test"].instances)
    assert sparse.annotated_objects["test"][0] == sparse.annotated_objects["test"][1]


def test_batches_carry_image_target_instances_and_index():
    batch = next(iter(_datamodule(0.6).train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["target"].dtype == torch.long
    assert torch.equal(batch["target"], (batch["instances"] > 0).long())
    assert batch["index"].shape == (4,)


def test_whole_images_of_any_size_are_padded_served_one_a_batch_and_cropped_back(tmp_path):
    """eval_tile=whole: every pixel of every image is evaluated once (tiles leave each ragged border out), the
    padding to the network's multiple is not."""
    from ece_lightning.data.dataset import InstanceMapDataset
    from ece_lightning.metrics.core import dice
    from ece_lightning.modules import SegmentationModule
    from ece_lightning.runs.evaluation import evaluate

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (50, 70, 3), dtype=np.uint8), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)]
    instances = [np.zeros((50, 70), np.int32), np.zeros((64, 64), np.int32)]
    instances[0][10:20, 60:70] = 1  # in the last columns, which a 64-pixel tile would leave out
    instances[1][5:15, 5:15] = 1
    dataset = InstanceMapDataset(images, instances, crop_size=None, pad_multiple=16)
    first = dataset[0]
    assert first["image"].shape == (3, 64, 80) and first["size"].tolist() == [50, 70]
    assert (first["image"][:, 50:, :] == 1.0).all() and (first["instances"][50:, :] == 0).all()  # white, unlabelled
    assert not dataset.uniform and InstanceMapDataset(images[1:], instances[1:], None, pad_multiple=16).uniform

    module = SegmentationModule(model={"name": "unet", "base_channels": 2, "depth": 4}, loss={"name": "ce"})
    module.forward = lambda x: torch.stack([torch.zeros_like(x[:, 0]), torch.ones_like(x[:, 0])], dim=1)  # all fg
    result = evaluate(module, dataset, ["a", "b"], batch_size=8, pictures=0)
    expected = [dice(m > 0, np.ones_like(m)) for m in instances]  # all foreground over the image, not its padding
    assert result.metrics["test/dice"] == pytest.approx(np.mean(expected))
    assert result.per_image["predicted_pixels"].tolist() == [50 * 70, 64 * 64]
