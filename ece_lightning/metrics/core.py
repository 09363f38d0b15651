"""Pure numpy cores of the segmentation metrics: integer counts first, ratios derived at the end.

Definitions:
- Dice over binary foreground, 2|A n B| / (|A| + |B|); both empty counts as 1.0.
- AJI (Kumar et al. 2017, as in the MoNuSeg evaluation): each ground-truth instance is paired with
  the predicted instance of maximal IoU (a prediction may serve several ground truths);
  C = sum of the pairs' intersections, U = sum of the pairs' unions + area of ground truths that
  overlap no prediction + area of predictions used by no pair. AJI = C / U, 1.0 when both are empty,
  0.0 when exactly one is.
- Instance matching (as stardist.matching): one-to-one assignment maximising the number of pairs
  with IoU >= threshold (ties broken by IoU); TP/FP/FN counts.
All functions accept instance maps with arbitrary non-negative labels (0 = background); the
contingency table of label pairs is built once with ``np.unique`` over overlapping pixels, so the
cost is one pass over the image, not a loop over instances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..instances import relabel_sequential


def _check_pair(target: np.ndarray, pred: np.ndarray) -> None:
    if target.shape != pred.shape:
        raise ValueError(f"target shape {target.shape} differs from prediction shape {pred.shape}")


def _sequential(instances: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels remapped to 0..N (0 kept for background), and N."""
    relabelled = relabel_sequential(instances)
    return relabelled, int(relabelled.max(initial=0))


@dataclass(frozen=True)
class Overlaps:
    """Sparse contingency table of two instance maps (labels renumbered 1..N, 1..M).

    ``target_index[k]``, ``pred_index[k]`` name the k-th overlapping pair (1-based) and
    ``intersection[k]`` its pixel count; ``target_area``/``pred_area`` are indexed by label (index 0
    is background).
    """

    target_index: np.ndarray
    pred_index: np.ndarray
    intersection: np.ndarray
    target_area: np.ndarray
    pred_area: np.ndarray

    @property
    def union(self) -> np.ndarray:
        return self.target_area[self.target_index] + self.pred_area[self.pred_index] - self.intersection

    @property
    def iou(self) -> np.ndarray:
        return self.intersection / self.union


def overlaps(target: np.ndarray, pred: np.ndarray) -> Overlaps:
    """Contingency table of the label pairs that share at least one pixel."""
    _check_pair(target, pred)
    target, n_target = _sequential(np.asarray(target))
    pred, n_pred = _sequential(np.asarray(pred))
    both = (target > 0) & (pred > 0)
    keys = target[both].astype(np.int64) * (n_pred + 1) + pred[both]
    pair_keys, intersection = np.unique(keys, return_counts=True)
    return Overlaps(
        target_index=pair_keys // (n_pred + 1),
        pred_index=pair_keys % (n_pred + 1),
        intersection=intersection.astype(np.int64),
        target_area=np.bincount(target.ravel(), minlength=n_target + 1).astype(np.int64),
        pred_area=np.bincount(pred.ravel(), minlength=n_pred + 1).astype(np.int64),
    )


def dice_counts(target_fg: np.ndarray, pred_fg: np.ndarray) -> tuple[int, int]:
    """(|A n B|, |A| + |B|) of two binary foreground masks (any non-zero value is foreground)."""
    _check_pair(target_fg, pred_fg)
    target_fg, pred_fg = np.asarray(target_fg) != 0, np.asarray(pred_fg) != 0
    return int(np.count_nonzero(target_fg & pred_fg)), int(target_fg.sum() + pred_fg.sum())


def dice_from_counts(intersection: int, total: int) -> float:
    return 1.0 if total == 0 else 2.0 * intersection / total


def dice(target_fg: np.ndarray, pred_fg: np.ndarray) -> float:
    """Dice of two binary masks; 1.0 when both are empty."""
    return dice_from_counts(*dice_counts(target_fg, pred_fg))


def aji_counts(target: np.ndarray, pred: np.ndarray) -> tuple[int, int]:
    """AJI's (C, U) of two instance maps (see the module docstring)."""
    table = overlaps(target, pred)
    unmatched_pred_area = int(table.pred_area[1:].sum())
    if table.intersection.size == 0:
        return 0, int(table.target_area[1:].sum()) + unmatched_pred_area
    iou = table.iou
    # For each target, the pair of maximal IoU (ties: lowest predicted label, as pairs come sorted).
    order = np.lexsort((-iou, table.target_index))
    _, first = np.unique(table.target_index[order], return_index=True)
    best = order[first]
    paired_targets = table.target_index[best]
    used_preds = np.unique(table.pred_index[best])
    intersection = int(table.intersection[best].sum())
    union = int(table.union[best].sum())
    lonely_targets = int(table.target_area[1:].sum() - table.target_area[paired_targets].sum())
    unused_preds = unmatched_pred_area - int(table.pred_area[used_preds].sum())
    return intersection, union + lonely_targets + unused_preds


def aji_from_counts(intersection: int, union: int) -> float:
    return 1.0 if union == 0 else intersection / union


def aji(target: np.ndarray, pred: np.ndarray) -> float:
    """Aggregated Jaccard Index of two instance maps."""
    return aji_from_counts(*aji_counts(target, pred))


def matching_counts(target: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5) -> tuple[int, int, int]:
    """(TP, FP, FN) of a one-to-one matching of instances with IoU >= ``iou_threshold``."""
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold={iou_threshold} must lie in (0, 1]")
    table = overlaps(target, pred)
    n_target = len(table.target_area) - 1
    n_pred = len(table.pred_area) - 1
    iou = table.iou
    ok = iou >= iou_threshold
    rows, row_index = np.unique(table.target_index[ok], return_inverse=True)
    cols, col_index = np.unique(table.pred_index[ok], return_inverse=True)
    if rows.size == 0:
        return 0, n_pred, n_target
    # Maximise the number of pairs first; IoU only breaks ties (its total weight stays below 1).
    score = np.zeros((rows.size, cols.size))
    score[row_index, col_index] = 1.0 + iou[ok] / (2.0 * min(rows.size, cols.size))
    r, c = linear_sum_assignment(score, maximize=True)
    tp = int(np.count_nonzero(score[r, c] > 0))
    return tp, n_pred - tp, n_target - tp


def f1_from_counts(tp: int, fp: int, fn: int) -> float:
    """2TP / (2TP + FP + FN); 1.0 when there is nothing to find and nothing was found."""
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else 2.0 * tp / denominator
