"""Choosing the detection score threshold on sparse validation labels without the bias of scoring them as if
they were exhaustive.

On labels that keep a random fraction ``s`` of the cells (``sparsity``), every unannotated cell a detector finds
counts as a false positive, so the F1 against those labels is highest at a threshold that finds too little.
Because the annotated cells are a random sample of all cells (whole objects, ``data.sparsify``), two quantities
are unbiased anyway: the recall on the annotated cells (exclusive recall) estimates the recall on all cells,
and ``tp / s`` estimates the true positives among all cells, so the precision is about ``tp / (s * predicted)``.
Their F1 (``corrected_f1``) is what ``choose_threshold`` maximises; ``sparse_f1`` is the biased choice, kept to
measure the bias.

    counts = threshold_counts(module, dataset)          # one forward pass per tile, every threshold
    table = threshold_table(counts, sparsity=0.3)       # sparse and corrected scores per threshold
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

DEFAULT_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))


def threshold_counts(module: Any, dataset: Any, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """Per threshold, the summed ``tp``, ``predicted`` and ``labelled`` counts of a detection module (eval mode) on
    ``dataset``: matched by point distance when the module scores point F1 (``task.metrics.point_radius`` > 0),
    else by box IoU, as its test metrics do."""
    from ..metrics.matching import box_centres, box_matching_counts, point_matching_counts

    if getattr(module, "task", None) != "detection":
        raise ValueError(f"threshold search needs a detection module, got task {getattr(module, 'task', None)!r}")
    thresholds = [float(t) for t in thresholds]
    if not thresholds or any(not 0.0 <= t <= 1.0 for t in thresholds):
        raise ValueError(f"thresholds={thresholds} must be values in [0, 1]")
    radius = module.metrics_cfg["point_radius"]
    totals = {t: [0, 0, 0] for t in thresholds}
    saved = dict(module.postprocess_cfg)
    module.eval()
    try:
        with torch.no_grad():
            for batch in DataLoader(dataset, batch_size=1, shuffle=False):
                outputs, batch = module.crop_to_images(module(batch["image"]), batch)
                labels, _ = module.label_boxes(batch["instances"], batch)
                labels = labels.cpu()
                for threshold in thresholds:
                    module.postprocess_cfg["score_threshold"] = threshold
                    predicted = module.detect(outputs, tuple(batch["instances"].shape[-2:])).of_image(0)[0].cpu()
                    if radius:
                        tp, fp, _ = point_matching_counts(box_centres(labels), box_centres(predicted), radius)
                    else:
                        tp, fp, _ = box_matching_counts(labels, predicted, module.metrics_cfg["iou_threshold"])
                    counts = totals[threshold]
                    counts[0], counts[1], counts[2] = counts[0] + tp, counts[1] + tp + fp, counts[2] + len(labels)
    finally:
        module.postprocess_cfg.update(saved)
    return pd.DataFrame([{"threshold": t, "tp": c[0], "predicted": c[1], "labelled": c[2]} for t, c in totals.items()])


def _f1(precision: pd.Series, recall: pd.Series) -> pd.Series:
    total = precision + recall
    return (2 * precision * recall / total.where(total > 0)).fillna(0.0)


def threshold_table(counts: pd.DataFrame, sparsity: float) -> pd.DataFrame:
    """Scores of every threshold from its counts on labels that keep a fraction ``sparsity`` of the cells:
    ``sparse_f1`` (the labels taken as exhaustive), ``exclusive_recall``, ``count_ratio`` (predicted over the
    estimated number of cells, labelled / sparsity), ``corrected_precision`` and ``corrected_f1``."""
    from ..data.sparsify import check_sparsity

    sparsity = check_sparsity(sparsity)
    table = counts.copy()
    predicted, labelled, tp = (table[k].astype(float) for k in ("predicted", "labelled", "tp"))
    recall = (tp / labelled.where(labelled > 0)).fillna(0.0)
    sparse_precision = (tp / predicted.where(predicted > 0)).fillna(0.0)
    table["sparse_f1"] = _f1(sparse_precision, recall)
    table["exclusive_recall"] = recall
    table["count_ratio"] = (predicted * sparsity / labelled.where(labelled > 0)).fillna(0.0)
    table["corrected_precision"] = (tp / (sparsity * predicted).where(predicted > 0)).clip(upper=1.0).fillna(0.0)
    table["corrected_f1"] = _f1(table["corrected_precision"], recall)
    return table


def choose_threshold(table: pd.DataFrame, criterion: str = "corrected_f1") -> float:
    """The threshold with the highest ``criterion`` (the lowest such threshold among equals)."""
    if criterion not in table.columns:
        raise ValueError(f"criterion={criterion!r} is not a column of the table ({', '.join(table.columns)})")
    best = table[table[criterion] == table[criterion].max()]
    return float(best["threshold"].min())
