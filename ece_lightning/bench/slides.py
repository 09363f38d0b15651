"""Synthetic slides with known objects, and "perfect" networks that read them, for testing and benchmarking
tiled prediction: every object is a dark disk on pink tissue, so its mask is a pure function of the pixels
and a model that thresholds darkness returns the ground truth in every tile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

TISSUE_RGB = (236, 196, 216)
NUCLEUS_RGB = (70, 40, 130)


def disk_centres(size: int, spacing: int = 40, radius: tuple[float, float] = (5.0, 12.0), seed: int = 0,
                 on_lines: tuple[int, ...] = (), blank_corner: bool = False) -> np.ndarray:
    """(N, 3) float64 rows (y, x, radius) of non-touching disks on a jittered lattice of ``spacing``; with
    ``on_lines`` (pixel positions, e.g. tile and block borders), lattice points near a line are moved
    onto it, so many disks straddle those borders. ``blank_corner`` leaves the top-left quarter empty
    (glass, for the tissue mask)."""
    rng = np.random.default_rng(seed)
    if spacing < 2 * radius[1] + 6:
        raise ValueError(f"spacing={spacing} is too small for disks of radius up to {radius[1]}: they would touch")
    points = np.arange(spacing // 2, size - spacing // 2 + 1, spacing, dtype=np.float64)
    yy, xx = np.meshgrid(points, points, indexing="ij")
    yy, xx = yy.ravel(), xx.ravel()
    jitter = (spacing - 2 * radius[1] - 4) / 2
    yy = yy + rng.uniform(-jitter, jitter, yy.size)
    xx = xx + rng.uniform(-jitter, jitter, xx.size)
    for line in on_lines:
        for coords in (yy, xx):
            near = np.abs(coords - line) < spacing / 2 - radius[1] - 2
            coords[near] = line + rng.uniform(-0.5, 0.5, int(near.sum()))
    radii = rng.uniform(*radius, yy.size)
    inside = (yy - radii > 1) & (xx - radii > 1) & (yy + radii < size - 1) & (xx + radii < size - 1)
    if blank_corner:
        inside &= ~((yy < size / 2) & (xx < size / 2))
    return np.stack([yy, xx, radii], axis=1)[inside]


def render(disks: np.ndarray, top: int, left: int, height: int, width: int, scale: float = 1.0,
           blank_corner_size: int | None = None) -> np.ndarray:
    """(height, width, 3) uint8 region of the slide at ``scale`` level-0 pixels per pixel: pixels whose centre
    lies in a disk are nucleus-coloured, the rest tissue (white glass in the blank corner)."""
    out = np.empty((height, width, 3), np.uint8)
    out[:] = TISSUE_RGB
    if blank_corner_size:
        corner = int(blank_corner_size / scale)
        out[: max(0, min(height, corner - top)), : max(0, min(width, corner - left))] = 255
    ys = (np.arange(top, top + height) + 0.5) * scale
    xs = (np.arange(left, left + width) + 0.5) * scale
    y0, y1, x0, x1 = ys[0], ys[-1], xs[0], xs[-1]
    near = ((disks[:, 0] + disks[:, 2] >= y0) & (disks[:, 0] - disks[:, 2] <= y1)
            & (disks[:, 1] + disks[:, 2] >= x0) & (disks[:, 1] - disks[:, 2] <= x1))
    for cy, cx, r in disks[near]:
        rows = np.flatnonzero(np.abs(ys - cy) <= r)
        cols = np.flatnonzero(np.abs(xs - cx) <= r)
        inside = (ys[rows, None] - cy) ** 2 + (xs[None, cols] - cx) ** 2 <= r * r
        block = out[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] if len(rows) and len(cols) else None
        if block is not None:
            block[inside] = NUCLEUS_RGB
    return out


def write_disk_slide(path: str | Path, size: int, disks: np.ndarray, tile: int = 256, levels: int = 2,
                     mpp: float = 0.5, blank_corner: bool = False) -> Path:
    """A tiled pyramidal TIFF of ``size`` x ``size`` pixels (deflate-compressed, ``levels`` levels halving each
    time, resolution tags saying ``mpp`` microns per pixel), rendered one tile at a time."""
    import tifffile

    path = Path(path)
    corner = size // 2 if blank_corner else None

    def tiles(side: int, scale: float):
        for top in range(0, side, tile):
            for left in range(0, side, tile):
                yield render(disks, top, left, tile, tile, scale, corner)

    with tifffile.TiffWriter(path, bigtiff=size * size * 3 > 2**31) as writer:
        for level in range(levels):
            side = size >> level
            options = {"subfiletype": 1} if level else {"subifds": levels - 1}
            writer.write(tiles(side, 2.0**level), shape=(side, side, 3), dtype=np.uint8, tile=(tile, tile),
                         compression="zlib", photometric="rgb",
                         resolution=(1e4 / (mpp * 2**level),) * 2, resolutionunit="CENTIMETER", **options)
    return path


class ThresholdSegmenter(nn.Module):
    """A 'perfect' segmentation network for disk slides: foreground logit from pixel darkness (pointwise, so
    a tiled prediction equals a single pass exactly)."""

    task = "segmentation"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        foreground = (0.55 - images.mean(dim=1, keepdim=True)) * 40.0
        return torch.cat([torch.zeros_like(foreground), foreground], dim=1)


class ComponentDetector(nn.Module):
    """A 'perfect' YOLLO-shaped detector for disk slides: the boxes of the dark components of each tile,
    encoded on the grid the way training targets are (objectness logit +-20)."""

    task = "detection"

    def __init__(self, stride: int = 8, anchor: float = 16.0):
        super().__init__()
        self.stride, self.anchor = stride, anchor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from scipy import ndimage as ndi

        from ..data.targets import instance_boxes
        from ..losses.detection import encode_targets

        dark = (images.mean(dim=1) < 0.55).cpu().numpy()
        instances = torch.from_numpy(np.stack([ndi.label(d)[0] for d in dark]).astype(np.int64))
        boxes, index = instance_boxes(instances)
        grid = (images.shape[-2] // self.stride, images.shape[-1] // self.stride)
        targets = encode_targets(boxes, index, len(images), grid, self.stride, self.anchor)
        offsets = targets.box[:, :2].clamp(1e-4, 1 - 1e-4)
        out = torch.cat([targets.objectness[:, None] * 40 - 20, torch.logit(offsets), targets.box[:, 2:]], dim=1)
        return out.to(images.device)
