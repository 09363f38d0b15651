"""Test-set metrics after every few epochs: the learning curve on exhaustive labels.

For analysis only (schedule studies, collapse and late-decay checks); never use it to select a model.
Each evaluation opens a DataLoader iterator, which draws a seed from torch's global generator, so a run
with this callback follows a different (equally seeded and reproducible) random trajectory than the
same run without it.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class TestCurve(pl.Callback):
    """Every ``every_n_epochs`` training epochs, evaluate the test split and log ``test_curve/<metric>``.

    Works with modules that provide ``make_metrics(prefix)`` and ``update_metrics(metrics, logits, target)``
    (the segmentation module).
    """

    def __init__(self, every_n_epochs: int = 1):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs={every_n_epochs} must be >= 1")
        self.every_n_epochs = every_n_epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs or trainer.datamodule is None:
            return
        metrics = pl_module.make_metrics("test_curve/").to("cpu")
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            for batch in trainer.datamodule.test_dataloader():
                logits = pl_module(batch["image"].to(pl_module.device))
                pl_module.update_metrics(metrics, logits, batch["instances"])
        pl_module.train(was_training)
        pl_module.log_dict({k: float(v) for k, v in metrics.compute().items()}, on_step=False, on_epoch=True)
