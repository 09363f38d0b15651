import numpy as np
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
