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
from ..postprocess.detection import Detections, check_detection_options, chosen_score_threshold, detect
from ..registry import check_arguments
from .base import TaskModule
from .teacher import build_teacher

#: ``task.postprocess.score_threshold`` value that chooses the threshold on the validation split
AUTO_THRESHOLD = "auto"

# What a test run reports: the full set on exhaustive test labels, only exclusive recall otherwise.
_EXHAUSTIVE_KEYS = ("precision", "recall", "f1", "count_ratio", "point_precision", "point_recall", "point_f1")
_NON_EXHAUSTIVE_KEYS = ("exclusive_recall", "point_exclusive_recall", "count_ratio")


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
        postprocess: ``score_threshold`` (objectness probability, default 0.5; ``auto``: chosen at every
            validation on the validation split, whose labels may be sparse, by the corrected F1 of
            ``analysis.thresholds``, kept in the module's state, so checkpoints, the test and ``ece-eval`` use the
            last choice; 0.5 until the first validation), ``nms_iou`` (paper 0.2), ``max_detections`` per image.
        loss_weights: ``lambda_objects`` (paper 1), ``lambda_background`` (paper 10), ``lambda_box``,
            ``normalize`` (cells | groups, see ``DetectionLoss``).
        metrics: ``iou_threshold`` of a true positive (paper 0.5) and ``point_radius`` (pixels; > 0 adds
            point-based F1 on box centres, for datasets labelled by centroids).
        exhaustive_test: whether the test labels are exhaustive; if not, only exclusive recall and the count
            ratio (predicted over annotated objects) are reported, and the test draws exclusive recall against the
            count ratio over score thresholds (``test_recall_vs_count.png``).
        fixed_box_size: null (default): box sizes are learned; a side in pixels: objectness and centres only,
            every detection is a square of this side and no size is regressed (points of unknown cell size).
        speed: ``channels_last``, ``compile``, ``compile_mode`` (``TaskModule.configure_speed``).
        teacher: self-training with an EMA teacher (``modules.teacher.MeanTeacher``: ``momentum``,
            ``threshold``, ``start``): once ``start`` of training has passed, the teacher's detections scoring >=
            ``threshold`` (after NMS) that overlap no label box (IoU < ``nms_iou``) become label boxes of the
            student, with the teacher's box, under the run's objectness loss (``loss=ece``: they count as
            annotated). None or {}: no teacher.
    """

    task = "detection"

    def __init__(self, model: dict[str, Any], loss: dict[str, Any], optimizer: dict[str, Any] | None = None,
                 scheduler: dict[str, Any] | None = None,
                 postprocess: dict[str, Any] | None = None, loss_weights: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, exhaustive_test: bool = True,
                 fixed_box_size: float | None = None, speed: dict[str, Any] | None = None,
                 teacher: dict[str, Any] | None = None):
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters()
        self.build_network(model, speed)
        if fixed_box_size is not None and (isinstance(fixed_box_size, bool) or not isinstance(fixed_box_size, (int, float))
                                           or not fixed_box_size > 0):
            raise ConfigError(f"task.fixed_box_size={fixed_box_size!r} must be a side in pixels > 0, or null (learn "
                              "box sizes)")
        self.fixed_box_size = None if fixed_box_size is None else float(fixed_box_size)
        self.teacher = build_teacher(dict(teacher or {}), self.net, loss)
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
        given = postprocess.get("score_threshold")
        if isinstance(given, str) and given != AUTO_THRESHOLD:
            raise ConfigError(f"task.postprocess.score_threshold={given!r} must be a number in [0, 1] or auto (chosen "
                              "on the validation split)")
        self.auto_threshold = given == AUTO_THRESHOLD
        if self.auto_threshold:
            postprocess["score_threshold"] = 0.5  # until the first validation has chosen one
            # NaN: not chosen yet. A buffer, so the choice travels in checkpoints (test, resume, ece-eval, ece-predict)
            self.register_buffer("chosen_score_threshold", torch.tensor(float("nan"), dtype=torch.float64))
        self._threshold_counts: torch.Tensor | None = None  # this validation's, with ``auto``
        self._test_threshold_counts: np.ndarray | None = None  # this test's, on test labels that are not exhaustive
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
        """Post-process with ``options`` over the trained ones (``ece-eval postprocess.<key>=...``); checked. A
        ``score_threshold`` given replaces one chosen in training (``auto``)."""
        if options.get("score_threshold") == AUTO_THRESHOLD:
            raise ConfigError(f"{prefix}.score_threshold=auto is chosen while training (task.postprocess.score_threshold"
                              "=auto, on the run's validation split); give a number in [0, 1] here, or leave it out "
                              "to use the run's own")
        if "score_threshold" in options:
            self.auto_threshold = False
        options = {**self.postprocess_cfg, **options}
        check_arguments(check_detection_options, options, prefix=prefix)
        with config_key(prefix):
            self.postprocess_cfg = check_detection_options(**options)

    def make_metrics(self, prefix: str) -> MetricCollection:
        metrics = {"boxes": BoxF1(self.metrics_cfg["iou_threshold"])}
        if self.metrics_cfg["point_radius"]:
            metrics["points"] = PointF1(self.metrics_cfg["point_radius"])
        return MetricCollection(metrics, prefix=prefix, compute_groups=False)

    def score_threshold(self) -> float:
        """The objectness threshold detections use: the last one chosen on validation data with ``auto``, else the
        configured one."""
        if self.auto_threshold:
            return chosen_score_threshold(self.chosen_score_threshold, self.postprocess_cfg["score_threshold"])
        return self.postprocess_cfg["score_threshold"]

    def postprocess_settings(self) -> dict[str, Any]:
        """The post-processing in use (the chosen threshold where ``auto``), as written to ``ece-eval``'s
        metrics.json."""
        return {**self.postprocess_cfg, "score_threshold": self.score_threshold()}

    def detect(self, outputs: torch.Tensor, image_size: tuple[int, int], score_threshold: float | None = None
               ) -> Detections:
        """Boxes in image pixels after the score threshold (``score_threshold()`` unless given) and NMS."""
        options = self.postprocess_settings()
        if score_threshold is not None:
            options["score_threshold"] = score_threshold
        return detect(outputs, self.net.stride, self.net.anchor, image_size=image_size, box_side=self.fixed_box_size,
                      **options)

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

    def _loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor], components: bool = False,
              labels: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
        boxes, image_index = labels if labels is not None else self.label_boxes(batch["instances"], batch)
        return self.criterion(outputs, boxes, image_index, pixels=batch.get("pixels"), components=components)

    @torch.no_grad()
    def pseudo_boxes(self, images: torch.Tensor, boxes: torch.Tensor, image_index: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The label boxes with the teacher's confident detections that overlap none of their image's labels
        added (its boxes, after NMS), their batch rows, and how many were added."""
        from torchvision.ops import box_iou

        self.teacher.net.eval()  # Lightning's train() reaches the teacher too: it always predicts with its statistics
        found = detect(self.teacher.net(images).float(), self.net.stride, self.net.anchor,
                       score_threshold=self.teacher.threshold, nms_iou=self.postprocess_cfg["nms_iou"],
                       max_detections=self.postprocess_cfg["max_detections"], image_size=tuple(images.shape[-2:]),
                       box_side=self.fixed_box_size)
        added_boxes, added_rows = [], []
        for row in range(len(images)):
            candidates = found.of_image(row)[0].to(boxes.device, boxes.dtype)
            labels = boxes[image_index == row]
            if len(candidates) and len(labels):
                candidates = candidates[box_iou(candidates, labels).max(dim=1).values < self.postprocess_cfg["nms_iou"]]
            added_boxes.append(candidates)
            added_rows.append(torch.full((len(candidates),), row, dtype=image_index.dtype, device=image_index.device))
        added = torch.cat(added_boxes)
        return torch.cat([boxes, added]), torch.cat([image_index, *added_rows]), len(added)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        labels = self.label_boxes(batch["instances"], batch)
        if self.teacher is not None and self.teacher.active(self.training_progress()):
            boxes, image_index, added = self.pseudo_boxes(batch["image"], *labels)
            labels = (boxes, image_index)
            # the share of the step's label boxes that the teacher gave
            self.log("train/pseudo_share", added / max(1, len(boxes)), on_step=False, on_epoch=True,
                     batch_size=len(batch["image"]), sync_dist=True)
        loss, parts = self._loss(self(batch["image"]), batch, components=self.record_loss_components, labels=labels)
        if self.record_loss_components:
            self.loss_components = {"obj": parts.pop("objectness_obj"), "background": parts.pop("objectness_background"),
                                    "loss": loss.detach()}
        size = len(batch["image"])
        self.log_training_loss(loss, batch_size=size)
        self.log_dict({f"train/loss_{k}": v for k, v in parts.items()}, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        if self.teacher is not None:  # once per optimiser step, also when gradients accumulate over batches
            self.teacher.update(self.net, self.global_step)

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
        # counts at every score threshold: for choosing one (auto, validation), for the recall-vs-count picture (a
        # test on labels that are not exhaustive)
        choosing = self.auto_threshold and metrics is self.val_metrics and self._threshold_counts is not None
        drawing = getattr(metrics, "prefix", None) == "test/" and not self.exhaustive_test
        if choosing or drawing:
            from ..analysis.thresholds import counts_at_thresholds

            counts = counts_at_thresholds(self, outputs, targets, tuple(target_instances.shape[-2:]))
            if choosing:
                self._threshold_counts += torch.as_tensor(counts, device=self._threshold_counts.device)
            else:
                self._test_threshold_counts = counts if self._test_threshold_counts is None else (
                    self._test_threshold_counts + counts)
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

    def on_test_epoch_start(self) -> None:
        self._test_threshold_counts = None

    def test_threshold_counts(self, reset: bool = False):
        """The counts of every score threshold (``analysis.thresholds.counts_frame``) on this process's test
        batches so far when the test labels are not exhaustive (for the recall-vs-count picture), else None."""
        counts = self._test_threshold_counts
        if reset:
            self._test_threshold_counts = None
        if counts is None:
            return None
        from ..analysis.thresholds import counts_frame

        return counts_frame(counts)

    def on_validation_epoch_start(self) -> None:
        if self.auto_threshold:
            from ..analysis.thresholds import DEFAULT_THRESHOLDS

            self._threshold_counts = torch.zeros(len(DEFAULT_THRESHOLDS), 3, dtype=torch.long, device=self.device)

    def on_validation_epoch_end(self) -> None:
        counts, self._threshold_counts = self._threshold_counts, None
        if counts is not None and not self.trainer.sanity_checking:
            self.choose_score_threshold(self.trainer.strategy.reduce(counts, reduce_op="sum"),
                                        float(getattr(self.trainer.datamodule, "sparsity", 1.0)))
        super().on_validation_epoch_end()

    def choose_score_threshold(self, counts: torch.Tensor, sparsity: float) -> float | None:
        """Choose and keep the threshold of highest corrected F1 (``analysis.thresholds``) from validation counts
        (every process's, summed) on labels keeping a fraction ``sparsity`` of the objects; None (the last choice
        kept) when the validation split has no labelled object."""
        from ..analysis.thresholds import DEFAULT_THRESHOLDS, choose_threshold, counts_frame, threshold_table

        frame = counts_frame(counts.cpu().numpy(), DEFAULT_THRESHOLDS)
        if not frame["labelled"].max():
            return None
        chosen = choose_threshold(threshold_table(frame, sparsity), "corrected_f1")
        self.chosen_score_threshold.fill_(chosen)
        self.log("val/score_threshold", chosen, sync_dist=False)
        return chosen

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
