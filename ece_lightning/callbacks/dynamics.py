"""Loss dynamics: the "Obj" and "Background" loss components per training step and their smoothed first
and second time derivatives (the paper's supplement Figure 1)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

COMPONENTS = ("obj", "background")
COLUMNS = ("step", "epoch", "loss") + tuple(
    f"{component}{suffix}" for component in COMPONENTS for suffix in ("", "_smooth", "_d1", "_d2"))


class LossDynamics(pl.Callback):
    """Records, at every training step, the mean loss term over annotated elements (``obj``) and over
    unannotated ones (``background``) as the training loss computes them (ECE's weights included; for
    detection: the objectness terms of cells with and without a box), then smooths each series with an
    exponential moving average of span ``span`` steps and takes finite differences of it per step:
    ``*_d1`` (first derivative, itself smoothed) and ``*_d2`` (second derivative, smoothed).

    Everything is computed on the module's device without a host sync per step; values are logged as
    ``dynamics/<column>`` every ``trainer.log_every_n_steps`` steps, and every step is appended to the CSV table
    ``path`` at the end of each epoch (and when training stops on an error), columns ``COLUMNS`` (``step``: the
    index of the training batch, counted across epochs and resumes). The
    smoothing is causal, so the logged values equal the table's; ``ece_lightning.analysis.dynamics``
    re-smooths a table offline. The smoothing state is in checkpoints: a resumed run continues the series.

    Args:
        path: CSV file to write (its folder is created); ``None`` keeps the table in memory (``rows``).
        span: EMA span in steps (alpha = 2 / (span + 1)); >= 1, 1 = no smoothing.
        log: also send the values to the loggers.
    """

    def __init__(self, path: str | Path | None = None, span: int = 25, log: bool = True):
        if not (isinstance(span, int) and span >= 1):
            raise ValueError(f"LossDynamics span={span!r} must be an integer >= 1 (steps)")
        self.path = None if path is None else Path(path)
        self.span, self.log = span, log
        self.alpha = 2.0 / (span + 1.0)
        self.rows: list[list[float]] = []  # written (or kept, without a path) rows
        self._pending: list[torch.Tensor] = []  # rows of this epoch (loss and values), still on the device
        self._pending_keys: list[tuple[int, int]] = []  # their (step, epoch)
        self._state: dict[str, torch.Tensor] | None = None
        self._saved_state: dict[str, list[float]] | None = None
        self._batches = 0  # training batches seen: the table's step column
        self._writer = True

    # -- Lightning hooks ------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not hasattr(pl_module, "record_loss_components"):
            raise TypeError(f"LossDynamics needs a task module that records loss components (SegmentationModule, "
                            f"DetectionModule); {type(pl_module).__name__} does not")
        pl_module.record_loss_components = True
        self._writer = trainer.is_global_zero  # one table per run: rank 0's batches (each rank sees its share)
        if self._writer and self.path is not None and self._batches == 0:
            self.path.unlink(missing_ok=True)  # a fresh run replaces an old table; a resumed one appends to it

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        components = pl_module.loss_components
        if components is None:
            return
        pl_module.loss_components = None
        self._batches += 1
        # The module's own loss: Lightning's ``outputs`` are divided by accumulate_grad_batches.
        loss = components.get("loss", outputs["loss"] if isinstance(outputs, dict) else outputs)
        values = self._update({name: components[name].float() for name in COMPONENTS})
        row = torch.stack([loss.detach().float().reshape(()).to(values["obj"].device),
                           *(values[column] for column in COLUMNS[3:])])
        self._pending.append(row)
        self._pending_keys.append((self._batches - 1, trainer.current_epoch))  # on the host: no device copy
        if self.log and _logs_this_step(trainer):  # Lightning's log calls cost: only when it writes
            pl_module.log_dict({f"dynamics/{column}": values[column] for column in COLUMNS[3:]}, on_step=True,
                               on_epoch=False, logger=True, prog_bar=False, batch_size=1)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flush()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flush()
        pl_module.record_loss_components = False

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.flush()

    # -- smoothing ------------------------------------------------------------------------------------
    def _update(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One EMA step per component; a NaN value (empty group) leaves the smoothed state unchanged."""
        device = raw["obj"].device
        if self._state is None:
            saved = self._saved_state or {}
            self._state = {key: torch.tensor(saved.get(key, [math.nan])[0], device=device)
                           for component in COMPONENTS for key in (f"{component}_smooth", f"{component}_d1", f"{component}_d2")}
        values: dict[str, torch.Tensor] = {}
        for name in COMPONENTS:
            x = raw[name]
            smooth_prev, d1_prev, d2_prev = (self._state[f"{name}{suffix}"] for suffix in ("_smooth", "_d1", "_d2"))
            smooth = self._ema(smooth_prev, x)
            missing = torch.isnan(x)  # an empty group: every smoothed series holds its value
            d1 = self._ema(d1_prev, torch.where(missing, torch.nan, torch.nan_to_num(smooth - smooth_prev, nan=0.0)))
            d2 = self._ema(d2_prev, torch.where(missing, torch.nan, torch.nan_to_num(d1 - d1_prev, nan=0.0)))
            self._state.update({f"{name}_smooth": smooth, f"{name}_d1": d1, f"{name}_d2": d2})
            values.update({name: x, f"{name}_smooth": smooth, f"{name}_d1": d1, f"{name}_d2": d2})
        return values

    def _ema(self, previous: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """previous + alpha (x - previous); starts at x, and a NaN x keeps the previous value."""
        updated = torch.where(torch.isnan(previous), x, previous + self.alpha * (x - previous))
        return torch.where(torch.isnan(x), previous, updated)

    # -- table ----------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Move this epoch's rows to the host (one transfer) and append them to the table."""
        if not self._pending:
            return
        new_rows = [[step, epoch, *values] for (step, epoch), values in
                    zip(self._pending_keys, torch.stack(self._pending).cpu().tolist())]
        self._pending, self._pending_keys = [], []
        self.rows.extend(new_rows)
        if self.path is None or not self._writer:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new_file = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new_file:
                writer.writerow(COLUMNS)
            for row in new_rows:
                writer.writerow([int(row[0]), int(row[1]), *(_fmt(v) for v in row[2:])])

    def state_dict(self) -> dict[str, Any]:
        if self._state is None:
            state = dict(self._saved_state or {})  # restored, not yet used: keep it
        else:
            state = {k: [float(v)] for k, v in self._state.items()}
        return {"span": self.span, "smoothing": state, "batches": self._batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved_state = dict(state_dict.get("smoothing", {}))
        self._batches = int(state_dict.get("batches", 0))
        self._state = None


def _logs_this_step(trainer: pl.Trainer) -> bool:
    """Whether Lightning writes step metrics to the loggers after this batch (its own rule, so values logged
    here are not dropped; with gradient accumulation it counts optimizer steps)."""
    connector = getattr(trainer, "_logger_connector", None)
    return bool(getattr(connector, "should_update_logs", True))


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.7g}"
