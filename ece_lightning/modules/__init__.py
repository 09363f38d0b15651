"""LightningModules (thin: wiring and logging, no maths) and their registry ``TASKS`` (``task.name``)."""

import pytorch_lightning as pl

from ..registry import Registry
from .detection import DetectionModule
from .segmentation import SegmentationModule

TASKS: Registry[pl.LightningModule] = Registry("task", "task.name")
TASKS.register("segmentation", SegmentationModule)
TASKS.register("detection", DetectionModule)

__all__ = ["TASKS", "DetectionModule", "SegmentationModule"]
