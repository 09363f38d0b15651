"""Metrics: pure numpy cores (``core``) and torchmetrics classes over them."""

from .core import aji, aji_counts, dice, dice_counts, f1_from_counts, matching_counts
from .detection import BoxF1, PointF1
from .matching import box_matching_counts, detection_scores, point_matching_counts
from .mean import WeightedMean
from .segmentation import AggregatedJaccardIndex, DiceScore, ForegroundRatio

__all__ = [
    "AggregatedJaccardIndex", "BoxF1", "DiceScore", "PointF1", "box_matching_counts", "detection_scores",
    "point_matching_counts", "ForegroundRatio", "aji", "aji_counts", "dice", "dice_counts",
    "f1_from_counts", "matching_counts", "WeightedMean",
]
