"""LightningModules (thin: wiring and logging, no maths)."""

from .segmentation import SegmentationModule

__all__ = ["SegmentationModule"]
