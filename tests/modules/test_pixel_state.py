"""ELR's per-pixel target buffer inside the task modules: sized from the training set, trained, checkpointed."""

import pytest
import pytorch_lightning as pl
import torch

from ece_lightning.data.datamodule import InstanceDataModule
from ece_lightning.modules import DetectionModule, SegmentationModule

DATA = {"source": "synthetic", "num_train": 4, "num_val": 2, "num_test": 2, "image_size": 32, "batch_size": 2,
        "sparsity": 0.5, "pixel_ids": True}
ELR = {"name": "elr", "beta": 0.7, "lam": 3.0}


def _trainer(tmp_path, epochs, callbacks=()):
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
                      callbacks=list(callbacks), enable_checkpointing=False)


class _BufferAtStart(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        self.buffer = _buffer(pl_module).clone()


def _buffer(module):
    return module.criterion.targets if isinstance(module, SegmentationModule) else module.criterion.objectness.targets


@pytest.mark.parametrize("module_cls, model", [
    (SegmentationModule, {"name": "unet", "base_channels": 4, "depth": 2}),
    (DetectionModule, {"name": "yollo", "base_channels": 4, "depth": 2, "anchor": 8.0}),
])
def test_elr_buffer_is_sized_trained_checkpointed_and_resumed(tmp_path, module_cls, model):
    pl.seed_everything(0)
    module = module_cls(model=model, loss=ELR)
    datamodule = InstanceDataModule(**DATA)
    trainer = _trainer(tmp_path, 1)
    trainer.fit(module, datamodule=datamodule)
    buffer = _buffer(module)  # two classes: background/foreground, or background/object for detection
    assert buffer.shape == (4 * 32 * 32, 2) and buffer.dtype == torch.float16
    assert module._ddp_params_and_buffers_to_ignore == [
        "criterion.targets" if module_cls is SegmentationModule else "criterion.objectness.targets"]
    assert buffer.float().abs().sum() > 0  # the first epoch wrote targets
    checkpoint = tmp_path / "one.ckpt"
    trainer.save_checkpoint(checkpoint)

    restored = module_cls.load_from_checkpoint(checkpoint)
    assert torch.equal(_buffer(restored), buffer)

    # Resume: setup() allocates zeros, then the checkpoint's buffer is loaded over them.
    probe = _BufferAtStart()
    resumed = module_cls(model=model, loss=ELR)
    _trainer(tmp_path, 2, [probe]).fit(resumed, datamodule=InstanceDataModule(**DATA), ckpt_path=checkpoint)
    assert torch.equal(probe.buffer, buffer)
    assert not torch.equal(_buffer(resumed), buffer)  # and the second epoch updated it
