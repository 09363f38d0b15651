"""Loss schedules: one callback, shared by every task module, that advances every loss with a training
schedule (``set_progress``; ECE's exclusion and negative-rate annealing) to the current epoch."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from torch import nn


def scheduled_losses(module: nn.Module) -> list[nn.Module]:
    """Every sub-module with ``set_progress`` (an ECE loss, or a detection loss holding one)."""
    return [m for m in module.modules() if callable(getattr(m, "set_progress", None))]


class LossSchedules(pl.Callback):
    """At the start of every training epoch, advance every scheduled loss of the module to that epoch
    (of ``trainer.max_epochs``) and log the schedule values as ``ece/<name>``.

    Its state (the epoch the schedules were last set to) is saved in checkpoints, and re-applied when
    training resumes, so a resumed run continues on the same schedule. A module without scheduled
    losses makes it a no-op.
    """

    def __init__(self, log_values: bool = True):
        self.log_values = log_values
        self.epoch: int = 0
        self.max_epochs: int | None = None
        self.values: dict[str, float] = {}

    def _apply(self, pl_module: pl.LightningModule, epoch: int, max_epochs: int | None) -> None:
        self.epoch, self.max_epochs = epoch, max_epochs
        self.values = {}
        for loss in scheduled_losses(pl_module):
            self.values.update(loss.set_progress(epoch, max_epochs))

    @staticmethod
    def _planned_epochs(trainer: pl.Trainer) -> int | None:
        """The planned training length, or None when training is bounded by steps or time only."""
        return trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._apply(pl_module, self.epoch, self._planned_epochs(trainer))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._apply(pl_module, trainer.current_epoch, self._planned_epochs(trainer))
        if self.log_values and self.values:
            pl_module.log_dict({f"ece/{k}": float(v) for k, v in self.values.items()}, on_step=False, on_epoch=True,
                               prog_bar=False, logger=True)

    @property
    def state_key(self) -> str:
        # The name checkpoints of earlier versions (when this callback was called ECEAnnealing) keep its state
        # under, so they still resume exactly.
        return "ECEAnnealing"

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "max_epochs": self.max_epochs, "values": dict(self.values)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch = int(state_dict["epoch"])
        self.max_epochs = state_dict.get("max_epochs")
        self.values = dict(state_dict.get("values", {}))
