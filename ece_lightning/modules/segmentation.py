"""Segmentation LightningModule: wires network, loss, optimiser, post-processing and metrics."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torchmetrics import MetricCollection

from ..inference.postprocess import foreground_to_instances
from ..losses import build_loss
from ..metrics import AggregatedJaccardIndex, DiceScore, ForegroundRatio
from ..models import build_model
from .pixel_state import allocate_pixel_state


class SegmentationModule(pl.LightningModule):
    """Semantic foreground segmentation trained from (sparse) instance annotations.

    Built from plain config dicts so a checkpoint restores itself (``load_from_checkpoint``).

    Args:
        model: registry config of the network, e.g. ``{"name": "unet", "base_channels": 16}``.
        loss: registry config of the loss, e.g. ``{"name": "ce"}``.
        optimizer: Adam settings ``lr``, ``betas`` and ``weight_decay``.
        postprocess: how predicted foreground becomes instances for AJI
            (``method``: components | watershed, ``min_size``, ``min_distance``).
    """

    def __init__(self, model: dict[str, Any], loss: dict[str, Any], optimizer: dict[str, Any] | None = None,
                 postprocess: dict[str, Any] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.net = build_model(**model)
        self.criterion = build_loss(**loss)
        self.optimizer_cfg = {"lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 0.0, **(optimizer or {})}
        self.postprocess_cfg = dict(postprocess or {})
        self.val_metrics = self.make_metrics("val/")
        self.test_metrics = self.make_metrics("test/")

    @staticmethod
    def make_metrics(prefix: str) -> MetricCollection:
        return MetricCollection({"dice": DiceScore(), "aji": AggregatedJaccardIndex(), "fg_ratio": ForegroundRatio()},
                                prefix=prefix, compute_groups=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            allocate_pixel_state(self, self.trainer.datamodule, num_channels=self.hparams.model.get("num_classes", 2))

    def _loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if getattr(self.criterion, "requires_pixels", False):
            return self.criterion(logits, batch["target"], pixels=batch.get("pixels"))  # training samples only
        return self.criterion(logits, batch["target"])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(self(batch["image"]), batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def segment(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Foreground (B, H, W) bool and instance maps (B, H, W) int32 on the CPU from logits."""
        foreground = (logits.argmax(dim=1) > 0).cpu()
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

    def _evaluate(self, batch: dict[str, torch.Tensor], metrics: MetricCollection, prefix: str) -> None:
        logits = self(batch["image"])
        self.log(f"{prefix}/loss", self._loss(logits, batch), batch_size=len(batch["image"]))
        self.update_metrics(metrics, logits, batch["instances"])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True)
        self.val_metrics.reset()

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def draw_predictions(self, batch: dict[str, torch.Tensor], max_images: int = 4) -> list:
        """RGB uint8 images of the first ``max_images`` samples with label instance outlines (green) and
        predicted ones (magenta)."""
        from ..data.overlay import draw_instances

        was_training = self.training
        self.eval()
        with torch.no_grad():
            images = batch["image"][:max_images].to(self.device)
            _, instances = self.segment(self(images))
        self.train(was_training)
        labels = batch["instances"][:max_images].cpu().numpy()
        return [draw_instances((image.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy(), label,
                               predicted) for image, label, predicted in zip(images, labels, instances.numpy())]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cfg = self.optimizer_cfg
        return torch.optim.Adam(self.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]),
                                weight_decay=cfg["weight_decay"])
