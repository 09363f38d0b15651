"""Segmentation LightningModule: wires network, loss, optimiser, post-processing and metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics import MetricCollection

from ..data.targets import touching_borders
from ..errors import ConfigError, config_key
from ..inference.tta import average_over_transforms
from ..losses import LOSSES
from ..losses.components import elementwise, reduce_like, split_by_annotation
from ..metrics import AggregatedJaccardIndex, DiceScore, ForegroundRatio
from ..postprocess.segmentation import (
    check_postprocess,
    foreground_from_logits,
    foreground_to_instances,
    split_threshold,
)
from .base import TaskModule
from .teacher import build_teacher


class SegmentationModule(TaskModule):
    """Semantic foreground segmentation trained from (sparse) instance annotations.

    Built from plain config dicts so a checkpoint restores itself (``load_from_checkpoint``).

    Args:
        model: registry config of the network, e.g. ``{"name": "unet", "base_channels": 16}``; it must
            output ``num_classes`` >= 2 channels (background + foreground classes).
        loss: registry config of the loss, e.g. ``{"name": "ce"}``.
        optimizer: optimiser registry config (``name``, ``lr``, ``betas``, ``weight_decay``).
        scheduler: learning-rate schedule config (``name``: none | cosine | onecycle, ``warmup``).
        postprocess: ``threshold`` (foreground probability of a pixel, default 0.5: the most likely class) and
            how the foreground becomes instances for AJI (``method``: components | watershed, ``min_size``,
            ``min_distance``; ``postprocess.segmentation.foreground_to_instances``); ``tta`` (none | flips |
            dihedral: evaluation on probabilities averaged over flipped / rotated copies, ``inference.tta``).
        speed: ``channels_last``, ``compile``, ``compile_mode`` (``TaskModule.configure_speed``).
        teacher: self-training with an EMA teacher (``modules.teacher.MeanTeacher``: ``momentum``,
            ``threshold``, ``start``); ``None`` (default) trains without one.
        separate_touching: train with a one-pixel gap of unannotated pixels where two annotated instances
            touch (``data.targets.touching_borders``), so the network learns a valley between them; off
            (default): the target is every annotated pixel. Validation and test targets are never changed.
    """

    task = "segmentation"

    def __init__(self, model: dict[str, Any], loss: dict[str, Any], optimizer: dict[str, Any] | None = None,
                 scheduler: dict[str, Any] | None = None,
                 postprocess: dict[str, Any] | None = None, speed: dict[str, Any] | None = None,
                 teacher: dict[str, Any] | None = None, separate_touching: bool = False):
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters()
        classes = model.get("num_classes", 2)
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ConfigError(f"model.num_classes={classes!r} must be an integer >= 2 (background + foreground "
                              "classes)")
        self.build_network(model, speed)
        self.teacher = build_teacher(dict(teacher or {}), self.net, loss)
        if not isinstance(separate_touching, bool):
            raise ConfigError(f"task.separate_touching={separate_touching!r} must be true or false")
        self.separate_touching = separate_touching
        with config_key("loss"):
            self.criterion = LOSSES.build(loss)
        self.pixel_state_channels = int(classes)
        with config_key("task.postprocess"):
            self.postprocess_cfg = check_postprocess(dict(postprocess or {}), prefix="task.postprocess")
        self.init_metrics()

    def override_postprocess(self, options: dict[str, Any], prefix: str = "postprocess") -> None:
        """Post-process with ``options`` over the trained ones (``ece-eval postprocess.<key>=...``); checked."""
        self.postprocess_cfg = check_postprocess({**self.postprocess_cfg, **options}, prefix=prefix)

    @staticmethod
    def make_metrics(prefix: str) -> MetricCollection:
        return MetricCollection({"dice": DiceScore(), "aji": AggregatedJaccardIndex(), "fg_ratio": ForegroundRatio()},
                                prefix=prefix, compute_groups=False)

    def _loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if getattr(self.criterion, "requires_pixels", False):
            return self.criterion(logits, batch["target"], pixels=batch.get("pixels"))  # training samples only
        return self.criterion(logits, batch["target"])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.separate_touching:
            batch = {**batch, "target": batch["target"].masked_fill(touching_borders(batch["instances"]), 0)}
        if self.teacher is not None and self.teacher.active(self.training_progress()):
            target, pseudo = self.teacher.pseudo_targets(batch["image"], batch["target"])
            batch = {**batch, "target": target}
            self.log("train/pseudo_share", pseudo.float().mean(), on_step=False, on_epoch=True,
                     batch_size=len(batch["image"]), sync_dist=True)
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

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        if self.teacher is not None:  # once per optimiser step, also when gradients accumulate over batches
            self.teacher.update(self.net, self.global_step)

    def crop_outputs(self, outputs: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return outputs[..., :height, :width]

    def evaluation_outputs(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of ``images``, averaged over flipped / rotated copies with ``postprocess.tta`` (``inference.tta``)."""
        return average_over_transforms(self, images, self.postprocess_cfg.get("tta", "none"))

    def segment(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Foreground (B, H, W) bool and instance maps (B, H, W) int32 on the CPU from logits."""
        threshold, options = split_threshold(self.postprocess_cfg)
        foreground = foreground_from_logits(logits, threshold).cpu()
        instances = torch.stack([
            torch.from_numpy(foreground_to_instances(fg, **options)) for fg in foreground.numpy()
        ])
        return foreground, instances

    def update_metrics(self, metrics: MetricCollection, logits: torch.Tensor, target_instances: torch.Tensor,
                       records: list[dict[str, Any]] | None = None, batch: dict[str, torch.Tensor] | None = None
                       ) -> None:
        foreground, instances = self.segment(logits)
        target = target_instances.cpu()
        metrics["dice"].update(foreground, target > 0)
        metrics["aji"].update(instances, target)
        metrics["fg_ratio"].update(foreground, target > 0)
        if records is not None:
            records.extend(segmentation_counts(t, f, i) for t, f, i in
                           zip(target.numpy(), foreground.numpy(), instances.numpy()))

    def evaluation_loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._loss(logits, batch)

    def draw_predictions(self, batch: dict[str, torch.Tensor], max_images: int = 4) -> list[np.ndarray]:
        """RGB uint8 images of the first ``max_images`` samples with label instance outlines (green) and
        predicted ones (magenta)."""
        from ..drawing import draw_instances

        images, logits = self.predict_images(batch, max_images)
        _, instances = self.segment(logits)
        labels = batch["instances"][:max_images].cpu().numpy()
        return [draw_instances(self.to_rgb(image), label, predicted)
                for image, label, predicted in zip(images, labels, instances.numpy())]


def segmentation_counts(target: np.ndarray, foreground: np.ndarray, instances: np.ndarray) -> dict[str, int]:
    """The integer counts of one sample behind Dice, AJI and the foreground ratio, and its object counts."""
    from ..metrics.core import aji_counts, dice_counts

    dice_intersection, dice_total = dice_counts(target > 0, foreground)
    aji_intersection, aji_union = aji_counts(target, instances)
    return {"true_objects": int(len(np.unique(target[target > 0]))), "predicted_objects": int(instances.max()),
            "dice_intersection": dice_intersection, "dice_total": dice_total, "aji_intersection": aji_intersection,
            "aji_union": aji_union, "true_pixels": int(np.count_nonzero(target)),
            "predicted_pixels": int(np.count_nonzero(foreground))}
