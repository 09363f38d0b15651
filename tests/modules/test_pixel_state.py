"""ELR's per-pixel target buffer inside the task modules: sized from the training set, trained, checkpointed."""

import pytest
import pytorch_lightning as pl
import torch

from ece_lightning.data.datamodule import SegmentationDataModule
from ece_lightning.modules import DetectionModule, SegmentationModule

DATA = {"source": "synthetic", "num_train": 4, "num_val": 2, "num_test": 2, "image_size": 32, "batch_size": 2,
        "sparsity": 0.5}
ELR = {"name": "elr", "beta": 0.7, "lam": 3.0}


def _trainer(tmp_path, epochs, callbacks=()):
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
                      callbacks=list(callbacks), enable_checkpointing=False)


class _BufferAtStart(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        self.buffer = pl_module.criterion.targets.clone()


@pytest.mark.parametrize("module_cls, model, channels", [
    (SegmentationModule, {"name": "unet", "base_channels": 4, "depth": 2}, 2),
    (DetectionModule, {"name": "yollo", "base_channels": 4, "depth": 2, "anchor": 8.0}, 1),
])
def test_elr_buffer_is_sized_trained_checkpointed_and_resumed(tmp_path, module_cls, model, channels):
    pl.seed_everything(0)
    module = module_cls(model=model, loss=ELR)
    datamodule = SegmentationDataModule(**DATA)
    trainer = _trainer(tmp_path, 1)
    trainer.fit(module, datamodule=datamodule)
    buffer = module.criterion.targets if channels == 2 else module.criterion.objectness.targets
    assert buffer.shape == (4 * 32 * 32, channels) and buffer.dtype == torch.float16
    assert buffer.float().abs().sum() > 0  # the first epoch wrote targets
    checkpoint = tmp_path / "one.ckpt"
    trainer.save_checkpoint(checkpoint)

    restored = module_cls.load_from_checkpoint(checkpoint)
    restored_buffer = restored.criterion.targets if channels == 2 else restored.criterion.objectness.targets
    assert torch.equal(restored_buffer, buffer)

    if channels == 2:  # resume: setup() allocates zeros, then the checkpoint's buffer is loaded over them
        probe = _BufferAtStart()
        resumed = module_cls(model=model, loss=ELR)
        _trainer(tmp_path, 2, [probe]).fit(resumed, datamodule=SegmentationDataModule(**DATA), ckpt_path=checkpoint)
        assert torch.equal(probe.buffer, buffer)
        assert not torch.equal(resumed.criterion.targets, buffer)  # and the second epoch updated it
