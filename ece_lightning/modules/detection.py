"""Detection LightningModule: wires YOLLO, the YOLO loss with a pluggable objectness loss, NMS and F1."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics import MetricCollection

from ..data.points import nominal_boxes
from ..data.targets import instance_boxes
from ..errors import ConfigError, config_key
from ..losses.detection import DetectionLoss
from ..metrics import BoxF1, PointF1
from ..postprocess.detection import Detections, check_detection_options, detect
from ..registry import check_arguments
from .base import TaskModule

# What a test run reports: the full set on exhaustive test labels, only exclusive recall otherwise.
_EXHAUSTIVE_KEYS = ("precision", "recall", "f1", "count_ratio", "point_precision", "point_recall", "point_f1")
_NON_EXHAUSTIVE_KEYS = ("exclusive_recall", "point_exclusive_recall")


class DetectionModule(TaskModule):
    """Cell detection trained from (sparse) instance annotations: label boxes are the boxes of the
    annotated instances of each (augmented) sample, derived on the device. Samples labelled with points
    (``dataset.point_labels``: one-pixel markers, with ``point_labels`` and ``point_box`` in the batch) get a
    nominal box of ``point_box`` pixels around each point instead, or of ``fixed_box_size`` where the cell size
    is not known.

    Args:
        model: registry config of a detection network, e.g. ``{"name": "yollo", "depth": 3}``.
        loss: registry config of the *objectness* loss (``ce``: BCE, ``ece``: binary exclusive CE,
            ``focal``); box regression is the detection loss's own.
        optimizer: optimiser registry config (``name``, ``lr``, ``betas``, ``weight_decay``).
        scheduler: learning-rate schedule config (``name``: none | cosine | onecycle, ``warmup``).
        postprocess: ``score_threshold`` (objectness probability, default 0.5), ``nms_iou`` (paper 0.2),
            ``max_detections`` per image.
        loss_weights: ``lambda_objects`` (paper 1), ``lambda_background`` (paper 10), ``lambda_box``,
            ``normalize`` (cells | groups, see ``DetectionLoss``).
        metrics: ``iou_threshold`` of a true positive (paper 0.5) and ``point_radius`` (pixels; > 0 adds
            point-based F1 on box centres, for datasets labelled by centroids).
        exhaustive_test: whether the test labels are exhaustive; if not, only exclusive recall is reported.
        fixed_box_size: null (default): box sizes are learned; a side in pixels: objectness and centres only,
            every detection is a square of this side and no size is regressed (points of unknown cell size).
        speed: ``channels_last``, ``compile``, ``compile_mode`` (``TaskModule.configure_speed``).
    """

    task = "detection"

    def __init__(self, model: dict[str, Any], loss: dict[str, Any], optimizer: dict[str, Any] | None = None,
                 scheduler: dict[str, Any] | None = None,
                 postprocess: dict[str, Any] | None = None, loss_weights: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, exhaustive_test: bool = True,
                 fixed_box_size: float | None = None, speed: dict[str, Any] | None = None):
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters()
        self.build_network(model, speed)
        if fixed_box_size is not None and (isinstance(fixed_box_size, bool) or not isinstance(fixed_box_size, (int, float))
                                           or not fixed_box_size > 0):
            raise ConfigError(f"task.fixed_box_size={fixed_box_size!r} must be a side in pixels > 0, or null (learn "
                              "box sizes)")
        self.fixed_box_size = None if fixed_box_size is None else float(fixed_box_size)
        loss_weights = dict(loss_weights or {})
        check_arguments(DetectionLoss, loss_weights, prefix="task.loss_weights",
                        supplied=("objectness", "stride", "anchor", "regress_size"))
        with config_key("loss"):
            objectness = DetectionLoss.objectness_loss(loss)
        with config_key("task.loss_weights"):
            self.criterion = DetectionLoss(objectness, stride=self.net.stride, anchor=self.net.anchor,
                                           regress_size=self.fixed_box_size is None, **loss_weights)
        postprocess = dict(postprocess or {})
        check_arguments(check_detection_options, postprocess, prefix="task.postprocess")
        with config_key("task.postprocess"):
            self.postprocess_cfg = check_detection_options(**postprocess)
        metrics = {"iou_threshold": 0.5, "point_radius": 0.0, **(metrics or {})}
        check_arguments(_metric_settings, metrics, prefix="task.metrics")
        with config_key("task.metrics"):
            self.metrics_cfg = _metric_settings(**metrics)
        self.exhaustive_test = bool(exhaustive_test)
        self.scored_points = False  # whether the current evaluation met point labels (set by update_metrics)
        self.init_metrics()

    def override_postprocess(self, options: dict[str, Any], prefix: str = "postprocess") -> None:
        """Post-process with ``options`` over the trained ones (``ece-eval postprocess.<key>=...``); checked."""
        options = {**self.postprocess_cfg, **options}
        check_arguments(check_detection_options, options, prefix=prefix)
        with config_key(prefix):
            self.postprocess_cfg = check_detection_options(**options)

    def make_metrics(self, prefix: str) -> MetricCollection:
        metrics = {"boxes": BoxF1(self.metrics_cfg["iou_threshold"])}
        if self.metrics_cfg["point_radius"]:
            metrics["points"] = PointF1(self.metrics_cfg["point_radius"])
        return MetricCollection(metrics, prefix=prefix, compute_groups=False)

    def detect(self, outputs: torch.Tensor, image_size: tuple[int, int]) -> Detections:
        """Boxes in image pixels after the score threshold and NMS."""
        return detect(outputs, self.net.stride, self.net.anchor, image_size=image_size, box_side=self.fixed_box_size,
                      **self.postprocess_cfg)

    def label_boxes(self, instances: torch.Tensor, batch: dict[str, torch.Tensor] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The label boxes (x0, y0, x1, y1) of a batch's instance maps and their batch rows: mask boxes, or nominal
        boxes around the point markers of samples labelled with points."""
        boxes, image_index = instance_boxes(instances)
        if batch is None or "point_labels" not in batch or not len(boxes):
            return boxes, image_index
        marked = batch["point_labels"].to(boxes.device)[image_index]
        sides = batch["point_box"].to(boxes.device).float()[image_index]
        unknown = marked & (sides <= 0)
        if unknown.any():
            if self.fixed_box_size is None:
                raise ConfigError("dataset.point_labels.box_size is null (cell size unknown): train objectness only "
                                  "with task.fixed_box_size=<side in pixels>, or give the size "
                                  "(dataset.point_labels.box_size=<px> or box_size_um=<um>)")
            sides = torch.where(unknown, torch.full_like(sides, self.fixed_box_size), sides)
        nominal = nominal_boxes(boxes, sides, *instances.shape[-2:])
        return torch.where(marked[:, None], nominal, boxes), image_index

    def _loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor], components: bool = False
              ) -> tuple[torch.Tensor, dict]:
        boxes, image_index = self.label_boxes(batch["instances"], batch)
        return self.criterion(outputs, boxes, image_index, pixels=batch.get("pixels"), components=components)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, parts = self._loss(self(batch["image"]), batch, components=self.record_loss_components)
        if self.record_loss_components:
            self.loss_components = {"obj": parts.pop("objectness_obj"), "background": parts.pop("objectness_background"),
                                    "loss": loss.detach()}
        size = len(batch["image"])
        self.log_training_loss(loss, batch_size=size)
        self.log_dict({f"train/loss_{k}": v for k, v in parts.items()}, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def update_metrics(self, metrics: MetricCollection, outputs: torch.Tensor, target_instances: torch.Tensor,
                       records: list[dict[str, Any]] | None = None, batch: dict[str, torch.Tensor] | None = None
                       ) -> None:
        detections = self.detect(outputs, tuple(target_instances.shape[-2:]))
        boxes, image_index = self.label_boxes(target_instances, batch)
        if (getattr(metrics, "prefix", None) == "test/" and batch is not None and "point_labels" in batch
                and bool(batch["point_labels"].any())):
            self.scored_points = True
        preds = [detections.of_image(i)[0].cpu() for i in range(len(outputs))]
        targets = [boxes[image_index == i].cpu() for i in range(len(outputs))]
        metrics.update(preds, targets)
        if records is not None:
            from ..metrics.matching import box_centres, box_matching_counts, point_matching_counts

            marked = batch["point_labels"].tolist() if batch is not None and "point_labels" in batch else []
            for row, (pred, target) in enumerate(zip(preds, targets)):
                if row < len(marked) and marked[row]:  # point labels: counted as point F1 counts them
                    tp, fp, fn = point_matching_counts(box_centres(target), box_centres(pred),
                                                       self.metrics_cfg["point_radius"])
                else:
                    tp, fp, fn = box_matching_counts(target, pred, self.metrics_cfg["iou_threshold"])
                records.append({"true_objects": len(target), "predicted_objects": len(pred), "tp": tp, "fp": fp,
                                "fn": fn})

    def evaluation_loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._loss(outputs, batch)[0]

    def test_results(self, results: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        keep = _EXHAUSTIVE_KEYS if self.exhaustive_test else _NON_EXHAUSTIVE_KEYS
        if self.scored_points:  # labels were points: box IoU against nominal boxes says nothing, point F1 does
            keep = tuple(k for k in keep if k.startswith("point_") or k == "count_ratio")
        self.scored_points = False
        return {k: v for k, v in results.items() if k.removeprefix("test/") in keep}

    def draw_predictions(self, batch: dict[str, torch.Tensor], max_images: int = 4) -> list[np.ndarray]:
        """RGB uint8 images of the first ``max_images`` samples with label boxes (green) and predicted
        boxes (magenta)."""
        from ..drawing import draw_boxes

        images, outputs = self.predict_images(batch, max_images)
        detections = self.detect(outputs, tuple(images.shape[-2:]))
        boxes, image_index = self.label_boxes(batch["instances"][:max_images],
                                              {k: v[:max_images] for k, v in batch.items()})
        drawn = []
        for i, image in enumerate(images):
            drawn.append(draw_boxes(self.to_rgb(image), labels=boxes[image_index == i].cpu().numpy(),
                                    predictions=detections.of_image(i)[0].cpu().numpy()))
        return drawn


def _metric_settings(iou_threshold: float = 0.5, point_radius: float = 0.0) -> dict[str, float]:
    """The detection ``metrics`` settings, checked: a true positive's IoU in (0, 1]; the point-F1 radius in
    pixels (>= 0; 0 = no point F1)."""
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) or not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold={iou_threshold!r} must lie in (0, 1]")
    if isinstance(point_radius, bool) or not isinstance(point_radius, (int, float)) or point_radius < 0:
        raise ValueError(f"point_radius={point_radius!r} must be a number >= 0 (pixels; 0 = no point F1)")
    return {"iou_threshold": float(iou_threshold), "point_radius": float(point_radius)}
