"""Task registry: ``task.name`` -> LightningModule class and DataModule class.

Both tasks read the same instance-map datasets; detection derives its label boxes from the (sparse,
augmented) instance maps of each batch.
"""

from __future__ import annotations

from .data.datamodule import SegmentationDataModule
from .modules.detection import DetectionModule
from .modules.segmentation import SegmentationModule

TASKS = {
    "segmentation": (SegmentationModule, SegmentationDataModule),
    "detection": (DetectionModule, SegmentationDataModule),
}
