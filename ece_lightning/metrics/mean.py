"""A weighted mean whose states are sums, so a distributed sync is exact whatever each process saw."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class WeightedMean(Metric):
    """sum(value x weight) / sum(weight) over updates (float64 sums; NaN and inf propagate, they are not
    dropped). Used for the evaluation loss, weighted by batch size: Lightning's own epoch mean of a logged
    value divides by the processes' mean batch count rounded to an integer, wrong under DDP when processes
    evaluate different numbers of samples. (torchmetrics' ``MeanMetric(nan_strategy="disable")`` ignores the
    weights in torchmetrics 1.9.)"""

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("weighted_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor | float, weight: float = 1.0) -> None:
        """``value``: a scalar; ``weight``: >= 0 (e.g. the batch size)."""
        value = torch.as_tensor(value, device=self.weighted_sum.device).detach().to(torch.float64)
        if value.numel() != 1:
            raise ValueError(f"WeightedMean takes one value per update, got shape {tuple(value.shape)}")
        if float(weight) < 0:
            raise ValueError(f"weight={weight} must be >= 0")
        self.weighted_sum += value.reshape(()) * float(weight)
        self.weight += float(weight)

    def compute(self) -> torch.Tensor:
        """The mean as float32 (NaN before any weight)."""
        return (self.weighted_sum / self.weight).float()
