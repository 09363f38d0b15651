"""Pictures for people: instance outlines, crosses at points and box outlines drawn on an image, images side
by side, and a grid of training samples as the model sees them (annotations, predictions, augmentation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_save_image

OUTLINE_COLOUR = (0, 255, 0)
PREDICTION_COLOUR = (255, 0, 255)


def draw_outlines(image: np.ndarray, instances: np.ndarray | None = None, points: np.ndarray | None = None,
                  colour: tuple[int, int, int] = OUTLINE_COLOUR) -> np.ndarray:
    """Copy of ``image`` (H, W, 3) uint8 with the inner boundary pixels of every instance, and a 5-px
    cross at every (x, y) point, painted ``colour``."""
    from skimage.segmentation import find_boundaries

    out = np.array(image, dtype=np.uint8, copy=True)
    if instances is not None:
        out[find_boundaries(instances, mode="inner") & (instances > 0)] = colour
    if points is not None and len(points):
        height, width = out.shape[:2]
        centres = np.rint(np.asarray(points)).astype(int)
        for offset in range(-2, 3):
            for dy, dx in ((offset, 0), (0, offset)):
                ys, xs = centres[:, 1] + dy, centres[:, 0] + dx
                keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
                out[ys[keep], xs[keep]] = colour
    return out


def save_overlay(path: str | Path, image: np.ndarray, instances: np.ndarray | None = None,
                 points: np.ndarray | None = None) -> Path:
    return atomic_save_image(path, draw_outlines(image, instances, points))


def draw_box_outlines(image: np.ndarray, boxes: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """Paint (in place) the one-pixel outline of every (x0, y0, x1, y1) pixel-edge box on ``image``."""
    height, width = image.shape[:2]
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=float).reshape(-1, 4):
        left, top = int(np.clip(np.floor(x0), 0, width - 1)), int(np.clip(np.floor(y0), 0, height - 1))
        right, bottom = int(np.clip(np.ceil(x1) - 1, 0, width - 1)), int(np.clip(np.ceil(y1) - 1, 0, height - 1))
        image[top, left:right + 1] = colour
        image[bottom, left:right + 1] = colour
        image[top:bottom + 1, left] = colour
        image[top:bottom + 1, right] = colour
    return image


def draw_boxes(image: np.ndarray, labels: np.ndarray | None = None, predictions: np.ndarray | None = None
               ) -> np.ndarray:
    """Copy of ``image`` with label boxes in green and predicted boxes in magenta (drawn on top)."""
    out = np.array(image, dtype=np.uint8, copy=True)
    if labels is not None:
        draw_box_outlines(out, labels, OUTLINE_COLOUR)
    if predictions is not None:
        draw_box_outlines(out, predictions, PREDICTION_COLOUR)
    return out


def draw_instances(image: np.ndarray, labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Copy of ``image`` with label instance outlines in green and predicted ones in magenta (on top)."""
    return draw_outlines(draw_outlines(image, labels), predictions, colour=PREDICTION_COLOUR)


def side_by_side(images: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """One RGB image of ``images`` in a row, top-aligned, separated by white columns."""
    height = max(image.shape[0] for image in images)
    width = sum(image.shape[1] for image in images) + gap * (len(images) - 1)
    out = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for image in images:
        out[: image.shape[0], x : x + image.shape[1]] = image
        x += image.shape[1] + gap
    return out


def preview_grid(dataset: Any, count: int, path: str | Path, columns: int = 4, gap: int = 4) -> Path:
    """Draw ``count`` samples of ``dataset`` (items 0, 1, ... wrapping around; each a dict with ``image``
    (3, H, W) in [0, 1] and ``instances``) with their instance outlines into one grid image at ``path``;
    returns the path."""
    tiles = []
    for item in range(int(count)):
        sample = dataset[item % len(dataset)]
        image = np.rint(sample["image"].permute(1, 2, 0).numpy() * 255.0).clip(0, 255).astype(np.uint8)
        tiles.append(draw_outlines(image, sample["instances"].numpy()))
    height, width = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    columns = max(1, min(int(columns), len(tiles)))
    rows = -(-len(tiles) // columns)
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    for index, tile in enumerate(tiles):
        y, x = (index // columns) * (height + gap), (index % columns) * (width + gap)
        grid[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return atomic_save_image(path, grid)
