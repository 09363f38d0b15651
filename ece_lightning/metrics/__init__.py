"""Metrics: pure numpy cores (``core``) and torchmetrics classes over them."""

from .core import aji, aji_counts, dice, dice_counts, f1_from_counts, matching_counts
from .segmentation import AggregatedJaccardIndex, DiceScore, ForegroundRatio

__all__ = [
    "AggregatedJaccardIndex", "DiceScore", "ForegroundRatio", "aji", "aji_counts", "dice", "dice_counts",
    "f1_from_counts", "matching_counts",
]
