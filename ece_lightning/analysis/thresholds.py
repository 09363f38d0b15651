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

``task.postprocess.score_threshold: auto`` makes a detection run do this on its own validation split at every
validation (``modules.detection``): the test then uses the corrected choice of the last validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

DEFAULT_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))


def counts_at_thresholds(module: Any, outputs: torch.Tensor, labels: Sequence[torch.Tensor],
                         image_size: tuple[int, int], thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> np.ndarray:
    """(len(thresholds), 3) integer counts ``tp``, ``predicted``, ``labelled`` of a detection module's ``outputs``
    (a batch) against ``labels`` (each image's label boxes), summed over the batch: matched by point distance when
    the module scores point F1 (``task.metrics.point_radius`` > 0), else by box IoU, as its test metrics do."""
    from ..metrics.matching import box_centres, box_matching_counts, point_matching_counts

    radius = module.metrics_cfg["point_radius"]
    labels = [boxes.cpu() for boxes in labels]
    counts = np.zeros((len(thresholds), 3), dtype=np.int64)
    for row, threshold in enumerate(thresholds):
        detections = module.detect(outputs, image_size, score_threshold=float(threshold))
        for image, label_boxes in enumerate(labels):
            predicted = detections.of_image(image)[0].cpu()
            if radius:
                tp, fp, _ = point_matching_counts(box_centres(label_boxes), box_centres(predicted), radius)
            else:
                tp, fp, _ = box_matching_counts(label_boxes, predicted, module.metrics_cfg["iou_threshold"])
            counts[row] += (tp, tp + fp, len(label_boxes))
    return counts


def counts_frame(counts: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """The ``threshold_counts`` frame of an array of ``counts_at_thresholds`` counts."""
    counts = np.asarray(counts)
    return pd.DataFrame({"threshold": [float(t) for t in thresholds], "tp": counts[:, 0].astype(int),
                         "predicted": counts[:, 1].astype(int), "labelled": counts[:, 2].astype(int)})


def threshold_counts(module: Any, dataset: Any, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """Per threshold, the summed ``tp``, ``predicted`` and ``labelled`` counts of a detection module (eval mode) on
    ``dataset`` (``counts_at_thresholds`` over its tiles)."""
    if getattr(module, "task", None) != "detection":
        raise ValueError(f"threshold search needs a detection module, got task {getattr(module, 'task', None)!r}")
    thresholds = [float(t) for t in thresholds]
    if not thresholds or any(not 0.0 <= t <= 1.0 for t in thresholds):
        raise ValueError(f"thresholds={thresholds} must be values in [0, 1]")
    totals = np.zeros((len(thresholds), 3), dtype=np.int64)
    module.eval()
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=1, shuffle=False):
            outputs, batch = module.crop_to_images(module(batch["image"]), batch)
            labels, _ = module.label_boxes(batch["instances"], batch)
            totals += counts_at_thresholds(module, outputs, [labels], tuple(batch["instances"].shape[-2:]), thresholds)
    return counts_frame(totals, thresholds)


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


def recall_count_table(counts: pd.DataFrame) -> pd.DataFrame:
    """For a test split that is not exhaustive: per threshold the ``exclusive_recall`` (found among the annotated
    objects) and ``count_ratio`` (predicted over annotated objects). The two belong together: exclusive recall alone
    rewards predicting everywhere, which shows as a count ratio far above 1 / (the fraction annotated)."""
    table = threshold_table(counts, sparsity=1.0)
    return table[["threshold", "tp", "predicted", "labelled", "exclusive_recall", "count_ratio"]]


def draw_recall_vs_count(counts: pd.DataFrame, threshold: float, path: Any, title: str = "") -> Any:
    """Write ``path`` (PNG): exclusive recall against the count ratio, one point per score threshold (labelled every
    0.1), the run's ``threshold`` marked. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_save_figure

    table = recall_count_table(counts)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(table["count_ratio"], table["exclusive_recall"], marker="o", markersize=3, color="tab:blue")
    for row in table.itertuples(index=False):
        if abs(row.threshold * 10 - round(row.threshold * 10)) < 1e-6:
            ax.annotate(f"{row.threshold:.1f}", (row.count_ratio, row.exclusive_recall), fontsize=7,
                        textcoords="offset points", xytext=(4, -8))
    current = table.loc[(table["threshold"] - threshold).abs().idxmin()]
    ax.plot([current["count_ratio"]], [current["exclusive_recall"]], marker="*", markersize=12, color="tab:red",
            linestyle="none", label=f"score threshold {threshold:g}")
    ax.set_xlabel("count ratio (predicted / annotated objects)")
    ax.set_ylabel("exclusive recall (annotated objects found)")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "test labels not exhaustive: recall is bought with count", fontsize=9)
    fig.tight_layout()
    atomic_save_figure(path, fig, dpi=120)
    plt.close(fig)
    return path


def write_recall_vs_count(counts: pd.DataFrame, threshold: float, stem: Any) -> tuple[Any, Any]:
    """``<stem>.csv`` (``recall_count_table``) and ``<stem>.png`` (``draw_recall_vs_count``) of a test on labels that
    are not exhaustive; returns both paths."""
    from pathlib import Path

    from ..io import atomic_write_text

    stem = Path(stem)
    csv = atomic_write_text(stem.with_suffix(".csv"), recall_count_table(counts).to_csv(index=False))
    return csv, draw_recall_vs_count(counts, threshold, stem.with_suffix(".png"))
