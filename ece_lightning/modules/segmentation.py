"""Segmentation LightningModule: wires network, loss, optimiser, post-processing and metrics."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import MetricCollection

from ..inference.postprocess import foreground_to_instances
from ..losses import build_loss
from ..losses.components import elementwise, reduce_like, split_by_annotation
from ..metrics import AggregatedJaccardIndex, DiceScore, ForegroundRatio
from ..models import build_model
from .base import TaskModule


def foreground_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B, ...) bool: the highest logit of (B, C, ...) is a foreground class (C >= 2; ties go to
    background, as with ``argmax``). One comparison instead of ``argmax(dim=1) > 0``, which on the CPU
    reduces the short channel dimension about 100x slower (110 vs 0.8 ms at 8x2x256x256). A NaN logit
    counts as background here (argmax would pick it as the maximum)."""
    if logits.shape[1] < 2:
        raise ValueError(f"segmentation logits need >= 2 classes along dim 1, got shape {tuple(logits.shape)}")
    if logits.shape[1] == 2:
        return logits[:, 1] > logits[:, 0]
    return logits[:, 1:].amax(dim=1) > logits[:, 0]


class SegmentationModule(TaskModule):
    """Semantic foreground segmentation trained from (sparse) instance annotations.

    Built from plain config dicts so a checkpoint restores itself (``load_from_checkpoint``).

    Args:
        model: registry config of the network, e.g. ``{"name": "unet", "base_channels": 16}``.
        loss: registry config of the loss, e.g. ``{"name": "ce"}``.
        optimizer: Adam settings ``lr``, ``betas`` and ``weight_decay``.
        postprocess: how predicted foreground becomes instances for AJI
            (``method``: components | watershed, ``min_size``, ``min_distance``).
        speed: ``channels_last``, ``compile``, ``compile_mode`` (``TaskModule.configure_speed``).
    """

    def __init__(self, model: dict[str, Any], loss: dict[str, Any], optimizer: dict[str, Any] | None = None,
                 postprocess: dict[str, Any] | None = None, speed: dict[str, Any] | None = None):
        super().__init__(optimizer)
        self.save_hyperparameters()
        self.net = build_model(**model)
        self.configure_speed(**(speed or {}))
        self.criterion = build_loss(**loss)
        self.pixel_state_channels = int(model.get("num_classes", 2))
        self.postprocess_cfg = dict(postprocess or {})
        self.init_metrics()

    @staticmethod
    def make_metrics(prefix: str) -> MetricCollection:
        return MetricCollection({"dice": DiceScore(), "aji": AggregatedJaccardIndex(), "fg_ratio": ForegroundRatio()},
                                prefix=prefix, compute_groups=False)

    def _loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if getattr(self.criterion, "requires_pixels", False):
            return self.criterion(logits, batch["target"], pixels=batch.get("pixels"))  # training samples only
        return self.criterion(logits, batch["target"])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        if self.record_loss_components:
            # The same terms, summed here instead of inside the loss, so the Obj/Background split is free.
            with elementwise(self.criterion):
                per_element = self._loss(logits, batch)
            loss = reduce_like(self.criterion, per_element, logits, batch["target"])
            self.loss_components = {**split_by_annotation(per_element, batch["target"] > 0), "loss": loss.detach()}
        else:
            loss = self._loss(logits, batch)
        self.log_training_loss(loss, batch_size=len(batch["image"]))
        return loss

    def segment(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Foreground (B, H, W) bool and instance maps (B, H, W) int32 on the CPU from logits."""
        foreground = foreground_from_logits(logits).cpu()
        instances = torch.stack([
            torch.from_numpy(foreground_to_instances(fg, **self.postprocess_cfg)) for fg in foreground.numpy()
        ])
        return foreground, instances

    def update_metrics(self, metrics: MetricCollection, logits: torch.Tensor, target_instances: torch.Tensor) -> None:
        foreground, instances = self.segment(logits)
        target = target_instances.cpu()
        metrics["dice"].update(foreground, target > 0)
        metrics["aji"].update(instances, target)
        metrics["fg_ratio"].update(foreground, target > 0)

    def evaluation_loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._loss(logits, batch)

    def draw_predictions(self, batch: dict[str, torch.Tensor], max_images: int = 4) -> list:
        """RGB uint8 images of the first ``max_images`` samples with label instance outlines (green) and
        predicted ones (magenta)."""
        from ..data.overlay import draw_instances

        images, logits = self.predict_images(batch, max_images)
        _, instances = self.segment(logits)
        labels = batch["instances"][:max_images].cpu().numpy()
        return [draw_instances(self.to_rgb(image), label, predicted)
                for image, label, predicted in zip(images, labels, instances.numpy())]
