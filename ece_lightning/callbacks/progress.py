"""A progress bar that is one line per run: every training step of the whole run on one bar, the epoch, the loss
and the last validation metrics beside it; validation and test draw nothing of their own."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks.progress import ProgressBar

#: progress-bar metrics shown, by the short name they are shown under
SHOWN = {"train/loss_step": "loss", "val/dice": "val dice", "val/aji": "val aji", "val/f1": "val f1",
         "val/fg_ratio": "val fg"}


class RunProgressBar(ProgressBar):
    """One tqdm bar over all training steps of a run (a resumed run starts where it stopped).

    Args:
        refresh_rate: redraw every this many steps (>= 1).
        description: the bar's label, e.g. ``ce @ 0.3 seed 0`` (``ece-train`` sets it from the run when None).
    """

    def __init__(self, refresh_rate: int = 5, description: str | None = None):
        super().__init__()
        if isinstance(refresh_rate, bool) or not isinstance(refresh_rate, int) or refresh_rate < 1:
            raise ValueError(f"refresh_rate={refresh_rate!r} must be an integer >= 1")
        self.refresh_rate, self.description = refresh_rate, description
        self._enabled = True
        self._bar: Any = None
        self._metrics: dict[str, str] = {}

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from tqdm.auto import tqdm

        per_epoch = trainer.num_training_batches
        finite = isinstance(per_epoch, int) and not math.isinf(per_epoch)
        total = trainer.max_epochs * per_epoch if finite and trainer.max_epochs and trainer.max_epochs > 0 else None
        self._bar = tqdm(total=total, initial=trainer.current_epoch * per_epoch if finite else 0,
                         desc=self.description or "training", unit="step", dynamic_ncols=True, file=sys.stderr,
                         leave=True, disable=not (self._enabled and trainer.is_global_zero))

    def _show(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for key, value in self.get_metrics(trainer, pl_module).items():
            if key in SHOWN:
                self._metrics[SHOWN[key]] = value if isinstance(value, str) else f"{float(value):.3f}"
        epoch = f"{trainer.current_epoch + 1}/{trainer.max_epochs}" if trainer.max_epochs else trainer.current_epoch + 1
        self._bar.set_postfix({"epoch": epoch, **self._metrics}, refresh=False)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._bar is None:
            return
        done = trainer.current_epoch * trainer.num_training_batches + batch_idx + 1
        if (batch_idx + 1) % self.refresh_rate == 0 or batch_idx + 1 == trainer.num_training_batches:
            self._show(trainer, pl_module)
            self._bar.update(done - self._bar.n)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is not None and not trainer.sanity_checking:
            self._show(trainer, pl_module)
            self._bar.refresh()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._close()
