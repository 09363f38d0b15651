"""A picture of the test predictions: the first test batch drawn over its images, written as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class TestPredictions(pl.Callback):
    """After the first test batch, write ``path``: up to ``max_images`` test samples side by side with the
    labels in green and the predictions in magenta (instance outlines for segmentation, boxes for
    detection). Works with modules that provide ``draw_predictions(batch, max_images)``. After a detection test
    on labels that are not exhaustive, also ``test_recall_vs_count.png`` (and ``.csv``) beside it: exclusive recall
    against the count ratio over score thresholds (``analysis.thresholds.draw_recall_vs_count``).

    Args:
        path: PNG to write (the run folder's ``test_predictions.png`` in ``conf/callbacks/default.yaml``).
        max_images: number of samples drawn (>= 1).
    """

    def __init__(self, path: str | Path, max_images: int = 4):
        if max_images < 1:
            raise ValueError(f"max_images={max_images} must be >= 1")
        self.path, self.max_images = Path(path), int(max_images)

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx or dataloader_idx or not trainer.is_global_zero or not hasattr(pl_module, "draw_predictions"):
            return
        from ..drawing import side_by_side
        from ..io import atomic_save_image

        atomic_save_image(self.path, side_by_side(pl_module.draw_predictions(batch, self.max_images)))

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        counts = pl_module.test_threshold_counts(reset=True) if hasattr(pl_module, "test_threshold_counts") else None
        if counts is None or not trainer.is_global_zero:  # (under DDP: rank 0's share of the test images)
            return
        from ..analysis.thresholds import write_recall_vs_count

        write_recall_vs_count(counts, pl_module.score_threshold(), self.path.with_name("test_recall_vs_count"))
