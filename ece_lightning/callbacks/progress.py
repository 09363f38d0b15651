"""Progress that is one line per run. On a terminal: one bar over every training step of the run, with the epoch,
the loss and the last validation metrics beside it (jobs running side by side each get their own line).
Elsewhere (a log file, CI): one line when the run's training ends, instead of hundreds of redraws. Validation
and test draw nothing of their own."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks.progress import ProgressBar

#: progress-bar metrics shown, by the short name they are shown under
SHOWN = {"train/loss_step": "loss", "val/dice": "val dice", "val/aji": "val aji", "val/f1": "val f1",
         "val/fg_ratio": "val fg"}


def parallel_slot() -> int:
    """This job's line among the jobs a Hydra multirun runs at once (0 outside a parallel sweep)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
    except (ImportError, ValueError):
        return 0
    jobs = int(hydra_cfg.launcher.get("n_jobs", 1) or 1) if "launcher" in hydra_cfg else 1
    return int(hydra_cfg.job.get("num", 0) or 0) % max(1, jobs)


class RunProgressBar(ProgressBar):
    """One line of progress per run (a resumed run starts where it stopped).

    Args:
        refresh_rate: redraw every this many steps (>= 1).
        description: the line's label, e.g. ``ce @ 0.3 seed 0`` (``ece-train`` sets it from the run when None).
        live: draw a live bar (True), only the final line (False), or decide by whether stderr is a terminal
            (None).
    """

    def __init__(self, refresh_rate: int = 5, description: str | None = None, live: bool | None = None):
        super().__init__()
        if isinstance(refresh_rate, bool) or not isinstance(refresh_rate, int) or refresh_rate < 1:
            raise ValueError(f"refresh_rate={refresh_rate!r} must be an integer >= 1")
        if live is not None and not isinstance(live, bool):
            raise ValueError(f"live={live!r} must be true, false or null (by whether stderr is a terminal)")
        self.refresh_rate, self.description, self.live = refresh_rate, description, live
        self._enabled = True
        self._bar: Any = None
        self._metrics: dict[str, str] = {}
        self._started = 0.0
        self._batches = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def _showing(self, trainer: pl.Trainer) -> bool:
        return self._enabled and trainer.is_global_zero

    def _steps(self, trainer: pl.Trainer) -> tuple[int | None, int]:
        """(the run's training batches, the batches done before this fit started) when known."""
        per_epoch = trainer.num_training_batches
        if not isinstance(per_epoch, int) or math.isinf(per_epoch):
            return None, 0
        total = trainer.max_epochs * per_epoch if trainer.max_epochs and trainer.max_epochs > 0 else None
        return total, trainer.current_epoch * per_epoch

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total, done = self._steps(trainer)
        self._started, self._batches, self._metrics = time.perf_counter(), 0, {}
        live = sys.stderr.isatty() if self.live is None else self.live
        if live and self._showing(trainer):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=done, desc=self.description or "training", unit="step",
                             dynamic_ncols=True, file=sys.stderr, leave=True, position=parallel_slot())

    def _collect(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for key, value in self.get_metrics(trainer, pl_module).items():
            if key in SHOWN:
                self._metrics[SHOWN[key]] = value if isinstance(value, str) else f"{float(value):.3f}"

    def _epoch(self, trainer: pl.Trainer) -> str:
        return f"{trainer.current_epoch + 1}/{trainer.max_epochs}" if trainer.max_epochs else str(trainer.current_epoch + 1)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._batches += 1
        if not self._showing(trainer):
            return
        last = batch_idx + 1 == trainer.num_training_batches
        if (batch_idx + 1) % self.refresh_rate and not last:
            return
        self._collect(trainer, pl_module)
        if self._bar is not None:
            self._bar.set_postfix({"epoch": self._epoch(trainer), **self._metrics}, refresh=False)
            self._bar.update(trainer.current_epoch * trainer.num_training_batches + batch_idx + 1 - self._bar.n)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self._showing(trainer):
            return
        self._collect(trainer, pl_module)
        if self._bar is not None:
            self._bar.set_postfix({"epoch": self._epoch(trainer), **self._metrics})

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._showing(trainer):
            steps, seconds = self._batches, time.perf_counter() - self._started
            shown = ", ".join(f"{k} {v}" for k, v in self._metrics.items())
            print(f"{self.description or 'training'}: {trainer.current_epoch} epochs, {steps} steps in {seconds:.0f} s "
                  f"({steps / max(seconds, 1e-9):.1f} steps/s); {shown}", file=sys.stderr, flush=True)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
