"""LightningModules (thin: wiring and logging, no maths)."""

from .detection import DetectionModule
from .segmentation import SegmentationModule

__all__ = ["DetectionModule", "SegmentationModule"]
