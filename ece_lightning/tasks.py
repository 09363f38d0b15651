"""Task registry: ``task.name`` -> LightningModule class and DataModule class."""

from __future__ import annotations

from .data.datamodule import SegmentationDataModule
from .modules.segmentation import SegmentationModule

TASKS = {"segmentation": (SegmentationModule, SegmentationDataModule)}
