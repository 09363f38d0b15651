"""Stitching of tile predictions: blended probabilities over a block's region, the objects a block owns
(segmentation: instances whose centroid lies in its core; detection: NMS, then boxes centred in its core)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from .export import COLUMNS, empty_objects, to_list
from .tiling import TileGrid


def blend_region(grid: TileGrid, region: tuple[int, int, int, int], load: Callable[[int, int], np.ndarray | None],
                 window: np.ndarray) -> np.ndarray:
    """Blended foreground probability (float32) over ``region`` from the tiles that cover it; ``load(row,
    col)`` gives a tile's (T, T) probabilities or None for a tile skipped as background."""
    top, left, bottom, right = region
    total = np.zeros((bottom - top, right - left), np.float32)
    weight = np.zeros_like(total)
    for row, col in grid.tiles_over(*region):
        origin_y, origin_x = grid.tile_origin(row, col)
        y0, x0 = max(origin_y, top), max(origin_x, left)
        y1, x1 = min(origin_y + grid.tile, bottom), min(origin_x + grid.tile, right)
        w = window[y0 - origin_y : y1 - origin_y, x0 - origin_x : x1 - origin_x]
        weight[y0 - top : y1 - top, x0 - left : x1 - left] += w
        probability = load(row, col)
        if probability is not None:
            total[y0 - top : y1 - top, x0 - left : x1 - left] += \
                w * probability[y0 - origin_y : y1 - origin_y, x0 - origin_x : x1 - origin_x].astype(np.float32)
    return total / np.maximum(weight, 1e-12)


def segment_block(grid: TileGrid, block: tuple[int, int], probability: np.ndarray, threshold: float,
                  postprocess: dict[str, Any], downsample: float, polygons: bool = True
                  ) -> tuple[pd.DataFrame, int]:
    """Objects owned by ``block`` from the blended probability of its region: instances of the region,
    kept when their centroid lies in the block's core. Returns the frame (level-0 coordinates) and the
    number of kept objects that touch the region's inner border (larger than the margin: maybe cut)."""
    from scipy import ndimage as ndi

    from ..postprocess.segmentation import foreground_to_instances, split_threshold

    top, left, bottom, right = grid.block_region(*block)
    core = grid.block_core(*block)
    instances = foreground_to_instances(probability >= threshold, **split_threshold(postprocess)[1])
    count = int(instances.max())
    if count == 0:
        return empty_objects(), 0
    flat = instances.ravel()
    rows, cols = np.divmod(np.arange(flat.size), instances.shape[1])
    sizes = np.bincount(flat, minlength=count + 1)[1:].astype(np.float64)
    cy = np.bincount(flat, weights=rows, minlength=count + 1)[1:] / sizes + 0.5 + top
    cx = np.bincount(flat, weights=cols, minlength=count + 1)[1:] / sizes + 0.5 + left
    score = np.bincount(flat, weights=probability.ravel(), minlength=count + 1)[1:] / sizes
    owned = inside(core, cy, cx)
    slices = ndi.find_objects(instances)
    inner = (top > 0, left > 0, bottom < grid.height, right < grid.width)
    records, cut = [], 0
    for label in np.flatnonzero(owned) + 1:
        sl = slices[label - 1]
        box = (sl[1].start + left, sl[0].start + top, sl[1].stop + left, sl[0].stop + top)
        touches = ((inner[0] and sl[0].start == 0) or (inner[1] and sl[1].start == 0)
                   or (inner[2] and sl[0].stop == instances.shape[0]) or (inner[3] and sl[1].stop == instances.shape[1]))
        cut += bool(touches)
        xs, ys = (_outline(instances[sl] == label, box[0], box[1]) if polygons else ([], []))
        records.append({
            "x": cx[label - 1] * downsample, "y": cy[label - 1] * downsample,
            "x0": box[0] * downsample, "y0": box[1] * downsample, "x1": box[2] * downsample, "y1": box[3] * downsample,
            "area": sizes[label - 1] * downsample**2, "score": score[label - 1],
            "tile_id": grid.owner_tile(cy[label - 1], cx[label - 1]),
            "polygon_x": to_list(np.asarray(xs) * downsample), "polygon_y": to_list(np.asarray(ys) * downsample),
        })
    return objects_frame(records), cut


def _outline(mask: np.ndarray, left: int, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The outer contour of a mask crop in pixel-edge coordinates of the level, without the points where
    the contour goes straight on (lossless: the marching-squares steps are half pixels in 8 directions)."""
    from skimage.measure import find_contours

    contours = find_contours(np.pad(mask, 1).astype(np.uint8), 0.5)
    if not contours:
        return np.zeros(0), np.zeros(0)
    ring = max(contours, key=len)[:-1]  # closed: the last point repeats the first
    direction = np.sign(np.diff(ring, axis=0, append=ring[:1]))
    turns = (direction != np.roll(direction, 1, axis=0)).any(axis=1)
    ring = ring[turns] if turns.any() else ring
    return ring[:, 1] - 1 + 0.5 + left, ring[:, 0] - 1 + 0.5 + top


def detect_block(grid: TileGrid, block: tuple[int, int], boxes: np.ndarray, nms_iou: float,
                 downsample: float) -> pd.DataFrame:
    """Detections owned by ``block``: NMS over the boxes (x0, y0, x1, y1, score; level pixels, centres in
    the block's region, each from the tile whose core holds its centre), then the boxes whose centre lies
    in the block's core."""
    from torchvision.ops import nms

    if not len(boxes):
        return empty_objects()
    boxes_t = torch.from_numpy(boxes[:, :4]).double()
    kept = nms(boxes_t, torch.from_numpy(boxes[:, 4]).double(), nms_iou).numpy()
    boxes = boxes[np.sort(kept)]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    owned = inside(grid.block_core(*block), cy, cx)
    records = [{"x": x * downsample, "y": y * downsample, "x0": b[0] * downsample, "y0": b[1] * downsample,
                "x1": b[2] * downsample, "y1": b[3] * downsample,
                "area": (b[2] - b[0]) * (b[3] - b[1]) * downsample**2, "score": b[4],
                "tile_id": grid.owner_tile(y, x), "polygon_x": [], "polygon_y": []}
               for b, x, y in zip(boxes[owned], cx[owned], cy[owned])]
    return objects_frame(records)


def core_boxes(grid: TileGrid, row: int, col: int, boxes: np.ndarray) -> np.ndarray:
    """A tile's boxes moved to level pixels, kept when their centre lies in the tile's core (the cores
    partition the grid cells, so every cell is trusted from exactly one tile)."""
    origin_y, origin_x = grid.tile_origin(row, col)
    boxes = boxes.copy()
    boxes[:, [0, 2]] += origin_x
    boxes[:, [1, 3]] += origin_y
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    # The core, clipped to the image: the last cores reach past it, and padding holds no boxes.
    core = (row * grid.step, col * grid.step, min((row + 1) * grid.step, grid.height),
            min((col + 1) * grid.step, grid.width))
    owned = inside(core, cy, cx)
    # Clip to the image so a box never leaves it.
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, grid.width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, grid.height)
    return boxes[owned]


def inside(rect: tuple[int, int, int, int], y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Points (y, x) in the half-open rectangle (top, left, bottom, right): every point has one owner."""
    top, left, bottom, right = rect
    return (y >= top) & (y < bottom) & (x >= left) & (x < right)


def objects_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    if not records:
        return empty_objects()
    frame = pd.DataFrame.from_records(records)
    frame["object_id"] = 0
    frame["class"] = ""
    return frame.astype({k: v for k, v in COLUMNS.items() if v != "string"})
