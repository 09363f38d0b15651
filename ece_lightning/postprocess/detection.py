"""From YOLLO grid outputs to boxes in image pixels: decode, confidence threshold, NMS."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import batched_nms

# exp(+-6) bounds a predicted box at 1/400..400 anchors: no overflow from an untrained head.
_MAX_LOG_SIZE = 6.0


@dataclass
class Detections:
    """Detections of a batch: ``boxes`` (K, 4) (x0, y0, x1, y1) pixels, ``scores`` (K,) objectness
    probabilities and ``image_index`` (K,) the batch row of each."""

    boxes: torch.Tensor
    scores: torch.Tensor
    image_index: torch.Tensor

    def of_image(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        keep = self.image_index == index
        return self.boxes[keep], self.scores[keep]


def decode_grid(outputs: torch.Tensor, stride: int, anchor: float, box_side: float | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every cell's box and score: ``boxes`` (B, Gh, Gw, 4) x0y0x1y1 pixels and ``scores`` (B, Gh, Gw).

    A cell (gy, gx) predicts the centre ``((gx + sigmoid(t_x)) * stride, (gy + sigmoid(t_y)) * stride)`` and
    the size ``anchor * exp(t_w)`` by ``anchor * exp(t_h)``; its score is ``sigmoid(t_obj)``. ``box_side``: every
    box is a square of this side instead (a detector trained without sizes, ``task.fixed_box_size``).
    """
    if outputs.dim() != 4 or outputs.shape[1] != 5:
        raise ValueError(f"detection outputs must be (B, 5, Gh, Gw), got {tuple(outputs.shape)}")
    outputs = outputs.float()
    grid_h, grid_w = outputs.shape[-2:]
    gy, gx = torch.meshgrid(torch.arange(grid_h, device=outputs.device), torch.arange(grid_w, device=outputs.device),
                            indexing="ij")
    centre_x = (gx + torch.sigmoid(outputs[:, 1])) * stride
    centre_y = (gy + torch.sigmoid(outputs[:, 2])) * stride
    if box_side is None:
        half_w = anchor * torch.exp(outputs[:, 3].clamp(-_MAX_LOG_SIZE, _MAX_LOG_SIZE)) / 2
        half_h = anchor * torch.exp(outputs[:, 4].clamp(-_MAX_LOG_SIZE, _MAX_LOG_SIZE)) / 2
    else:
        half_w = half_h = torch.full_like(centre_x, float(box_side) / 2)
    boxes = torch.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], dim=-1)
    return boxes, torch.sigmoid(outputs[:, 0])


def chosen_score_threshold(chosen: torch.Tensor | None, configured: float) -> float:
    """The score threshold a detector trained with ``score_threshold: auto`` uses: its buffer ``chosen`` (the grid
    value, rounded back from the buffer's dtype) once a validation has set it, else ``configured``."""
    if chosen is None or not bool(torch.isfinite(chosen)):
        return float(configured)
    return round(float(chosen), 6)


def check_detection_options(score_threshold: float = 0.5, nms_iou: float = 0.2, max_detections: int = 1000
                            ) -> dict[str, float | int]:
    """The detection post-processing settings, checked (see ``detect``); returns them as a dict."""
    for key, value in (("score_threshold", score_threshold), ("nms_iou", nms_iou)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{key}={value!r} must lie in [0, 1]")
    if isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 0:
        raise ValueError(f"max_detections={max_detections!r} must be an integer >= 0 (0 = no limit)")
    return {"score_threshold": float(score_threshold), "nms_iou": float(nms_iou), "max_detections": max_detections}


def detect(outputs: torch.Tensor, stride: int, anchor: float, score_threshold: float = 0.5, nms_iou: float = 0.2,
           max_detections: int = 1000, image_size: tuple[int, int] | None = None, box_side: float | None = None
           ) -> Detections:
    """Boxes of a batch after the confidence threshold and per-image NMS.

    Args:
        outputs: (B, 5, Gh, Gw) model outputs.
        stride, anchor: the model's geometry (``model.stride``, ``model.anchor``).
        score_threshold: keep cells whose objectness probability is >= this (in [0, 1]).
        nms_iou: suppress a box overlapping a higher-scoring one of the same image with IoU > this
            (paper: 0.2).
        max_detections: at most this many boxes per image (highest scores first; 0 = no limit).
        image_size: (H, W) to clip boxes to (default: the grid times the stride).
        box_side: every box a square of this side (``decode_grid``); None: the predicted sizes.
    """
    check_detection_options(score_threshold, nms_iou, max_detections)
    boxes, scores = decode_grid(outputs, stride, anchor, box_side)
    height, width = image_size or (outputs.shape[-2] * stride, outputs.shape[-1] * stride)
    boxes = torch.stack([boxes[..., 0].clamp(0, width), boxes[..., 1].clamp(0, height),
                         boxes[..., 2].clamp(0, width), boxes[..., 3].clamp(0, height)], dim=-1)
    image_index = torch.arange(outputs.shape[0], device=outputs.device)[:, None, None].expand_as(scores)
    keep = scores >= score_threshold
    boxes, scores, image_index = boxes[keep], scores[keep], image_index[keep]
    kept = batched_nms(boxes, scores, image_index, nms_iou)  # sorted by decreasing score
    boxes, scores, image_index = boxes[kept], scores[kept], image_index[kept]
    if max_detections and len(kept):
        rank = torch.zeros_like(image_index)
        for index in image_index.unique():
            rows = image_index == index
            rank[rows] = torch.arange(int(rows.sum()), device=rank.device)
        within = rank < max_detections
        boxes, scores, image_index = boxes[within], scores[within], image_index[within]
    return Detections(boxes, scores, image_index)
