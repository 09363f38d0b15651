"""Outlines of instances (or crosses at points) drawn on an image, for looking at annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUTLINE_COLOUR = (0, 255, 0)


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
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(draw_outlines(image, instances, points)).save(path)
    return path
