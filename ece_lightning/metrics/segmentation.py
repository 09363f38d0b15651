"""torchmetrics wrappers over the numpy cores: states are sums of counts, so DDP sync is cheap."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from . import core

AVERAGES = ("image", "pooled")


def _check_average(average: str) -> str:
    if average not in AVERAGES:
        raise ValueError(f"average={average!r} is not one of {', '.join(AVERAGES)}")
    return average


def _batched_numpy(*tensors: torch.Tensor):
    arrays = [t.detach().cpu().numpy() for t in tensors]
    if arrays[0].ndim == 2:
        arrays = [a[None] for a in arrays]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"prediction and target shapes differ: {sorted(shapes)}")
    return zip(*arrays)


class _RatioOfCounts(Metric):
    """Accumulates per-image (numerator, denominator) counts and the per-image ratios."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, average: str = "image", **kwargs):
        super().__init__(**kwargs)
        self.average = _check_average(average)
        self.add_state("numerator", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("denominator", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("per_image_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def _counts(self, pred: np.ndarray, target: np.ndarray) -> tuple[int, int]:
        raise NotImplementedError

    def _ratio(self, numerator: int, denominator: int) -> float:
        raise NotImplementedError

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred`` and ``target``: (B, H, W) or (H, W) maps (binary or instance labels)."""
        for p, t in _batched_numpy(pred, target):
            numerator, denominator = self._counts(p, t)
            self.numerator += numerator
            self.denominator += denominator
            self.per_image_sum += self._ratio(numerator, denominator)
            self.images += 1

    def compute(self) -> torch.Tensor:
        if self.average == "pooled":
            value = self._ratio(int(self.numerator), int(self.denominator))
        else:
            value = float(self.per_image_sum) / max(int(self.images), 1)
        return torch.tensor(value, dtype=torch.float32)


class DiceScore(_RatioOfCounts):
    """Foreground Dice. ``average="image"`` (default) averages per-image Dice (empty/empty = 1.0);
    ``"pooled"`` takes 2 sum|A n B| / sum(|A| + |B|) over all images."""

    def _counts(self, pred, target):
        return core.dice_counts(target, pred)

    def _ratio(self, numerator, denominator):
        return core.dice_from_counts(numerator, denominator)


class AggregatedJaccardIndex(_RatioOfCounts):
    """AJI of instance maps (Kumar 2017). ``average="image"`` (default, as MoNuSeg reports it)
    averages per-image AJI; ``"pooled"`` takes sum C / sum U over all images."""

    def _counts(self, pred, target):
        return core.aji_counts(target, pred)

    def _ratio(self, numerator, denominator):
        return core.aji_from_counts(numerator, denominator)


class ForegroundRatio(Metric):
    """Predicted foreground pixels / true foreground pixels (1 = the right amount; > 2 is a collapse
    towards all-foreground, < 0.5 a collapse towards background)."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("predicted", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("true", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target {tuple(target.shape)}")
        self.predicted += torch.count_nonzero(pred).to(torch.int64)
        self.true += torch.count_nonzero(target).to(torch.int64)

    def compute(self) -> torch.Tensor:
        if int(self.true) == 0:
            return torch.tensor(float("inf") if int(self.predicted) else 1.0)
        return self.predicted.double().div(self.true.double()).float()
