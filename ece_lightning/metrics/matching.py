"""One-to-one matching of detections to labels (pure functions): boxes by IoU, points by distance.

Both maximise the number of matched pairs (Hungarian assignment); the IoU (or closeness) only breaks
ties, so a prediction is a true positive when it is paired with a label of its own at IoU >= the
threshold (distance <= the radius). Duplicates of one label therefore count once; the rest are false
positives.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou


def _as_array(values: torch.Tensor | np.ndarray, columns: int, name: str) -> np.ndarray:
    array = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    array = array.reshape(-1, columns) if array.size == 0 else array
    if array.ndim != 2 or array.shape[1] != columns:
        raise ValueError(f"{name} must be ({'K'}, {columns}), got {array.shape}")
    return array


def _assign(similarity: np.ndarray, ok: np.ndarray, n_pred: int, n_target: int) -> tuple[int, int, int]:
    """(TP, FP, FN) of the assignment that maximises the number of ``ok`` pairs, then ``similarity`` in [0, 1]."""
    if not ok.any():
        return 0, n_pred, n_target
    score = np.where(ok, 1.0 + similarity / (2.0 * min(n_pred, n_target)), 0.0)
    rows, cols = linear_sum_assignment(score, maximize=True)
    tp = int(np.count_nonzero(score[rows, cols] > 0))
    return tp, n_pred - tp, n_target - tp


def box_matching_counts(target: torch.Tensor | np.ndarray, pred: torch.Tensor | np.ndarray,
                        iou_threshold: float = 0.5) -> tuple[int, int, int]:
    """(TP, FP, FN) of predicted against label boxes, both (K, 4) as (x0, y0, x1, y1) (labels first, as in
    ``metrics.core``)."""
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold={iou_threshold} must lie in (0, 1]")
    pred, target = _as_array(pred, 4, "predicted boxes"), _as_array(target, 4, "label boxes")
    if not len(pred) or not len(target):
        return 0, len(pred), len(target)
    iou = box_iou(torch.from_numpy(pred), torch.from_numpy(target)).numpy()
    return _assign(iou, iou >= iou_threshold, len(pred), len(target))


def point_matching_counts(target: torch.Tensor | np.ndarray, pred: torch.Tensor | np.ndarray,
                          radius: float) -> tuple[int, int, int]:
    """(TP, FP, FN) of predicted against label points, both (K, 2) as (x, y), paired within ``radius`` pixels
    (labels first)."""
    if not radius > 0:
        raise ValueError(f"radius={radius} must be > 0 (pixels)")
    pred, target = _as_array(pred, 2, "predicted points"), _as_array(target, 2, "label points")
    if not len(pred) or not len(target):
        return 0, len(pred), len(target)
    distance = np.linalg.norm(pred[:, None, :] - target[None, :, :], axis=-1)
    return _assign(1.0 - distance / (radius * (1 + 1e-9)), distance <= radius, len(pred), len(target))


def box_centres(boxes: torch.Tensor) -> torch.Tensor:
    """(K, 2) centres of (K, 4) x0y0x1y1 boxes."""
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def detection_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from counts. With nothing to find and nothing found all three are 1.0;
    a ratio with an empty denominator otherwise is 0.0 (no predictions: precision 0)."""
    if tp + fp + fn == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": precision, "recall": recall, "f1": 2.0 * tp / (2 * tp + fp + fn)}
