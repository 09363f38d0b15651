"""torchmetrics classes for detection: integer TP/FP/FN counts summed over images (micro average),
ratios derived at ``compute`` (so DDP sync is a sum of three integers)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from .matching import box_centres, box_matching_counts, detection_scores, point_matching_counts


class _MatchingCounts(Metric):
    key_prefix = ""  # prepended to the names compute() returns, so several matchers share a MetricCollection
    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("tp", "fp", "fn"):
            self.add_state(name, torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def _counts(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[int, int, int]:
        raise NotImplementedError

    def update(self, preds: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        """``preds`` and ``targets``: one tensor of boxes (K, 4) x0y0x1y1 per image."""
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predicted box sets but {len(targets)} label box sets")
        for pred, target in zip(preds, targets):
            tp, fp, fn = self._counts(pred, target)
            self.tp += tp
            self.fp += fp
            self.fn += fn

    def compute(self) -> dict[str, torch.Tensor]:
        """``precision``, ``recall``, ``f1``, ``exclusive_recall`` (the recall over the labelled objects: the
        only one of these that means something when the labels are not exhaustive) and ``count_ratio``
        (predictions / labels: > 1 over-detects, < 1 under-detects; 1.0 when both are 0)."""
        tp, fp, fn = int(self.tp), int(self.fp), int(self.fn)
        scores = detection_scores(tp, fp, fn)
        scores["exclusive_recall"] = scores["recall"]
        scores["count_ratio"] = (tp + fp) / (tp + fn) if tp + fn else (1.0 if tp + fp == 0 else float("inf"))
        return {f"{self.key_prefix}{name}": torch.tensor(value, dtype=torch.float32) for name, value in scores.items()}


class BoxF1(_MatchingCounts):
    """Detection precision/recall/F1: a predicted box is a true positive when it is paired one-to-one
    with a label box at IoU >= ``iou_threshold`` (paper: 0.5)."""

    def __init__(self, iou_threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold={iou_threshold} must lie in (0, 1]")
        self.iou_threshold = float(iou_threshold)

    def _counts(self, pred, target):
        return box_matching_counts(target, pred, self.iou_threshold)


class PointF1(_MatchingCounts):
    """Point-based precision/recall/F1 for labels that are centroids: box centres (or (K, 2) points) are
    paired one-to-one within ``radius`` pixels. Its results are named ``point_f1``, ``point_precision``..."""

    key_prefix = "point_"

    def __init__(self, radius: float, **kwargs):
        super().__init__(**kwargs)
        if not radius > 0:
            raise ValueError(f"radius={radius} must be > 0 (pixels)")
        self.radius = float(radius)

    def _counts(self, pred, target):
        as_points = lambda t: box_centres(t) if t.shape[-1] == 4 else t  # noqa: E731
        return point_matching_counts(as_points(target), as_points(pred), self.radius)
