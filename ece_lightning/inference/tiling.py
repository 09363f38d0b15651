"""Geometry of tiled prediction: one global grid of overlapping tiles, the blending window, and blocks.

Tile ``(i, j)`` reads the square ``[i*S - P, i*S - P + T)`` x ``[j*S - P, ...)`` of the image (``T`` the tile
side, ``O = 2P`` the overlap, ``S = T - O`` the step); its *core* is the middle ``S x S`` square
``[i*S, (i+1)*S)``, and the cores partition the image. Every tile origin is a multiple of the network's
input multiple, so a tile sees the image on the same pooling grid as one pass over the whole image.

Blocks (``block_tiles`` x ``block_tiles`` tile cores) are the unit of stitching and of resuming: a block
blends the tiles over its core plus a ``margin`` (the largest object size), finds objects there and
keeps the ones whose centre lies in its core, so each object has exactly one owner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TileGrid:
    """Tiles and blocks over an image of ``height`` x ``width`` pixels.

    Args:
        height, width: the image (at the predicted level).
        tile: tile side T in pixels, a multiple of ``multiple``.
        overlap: O, a multiple of 2 * ``multiple``, at most ``tile / 2`` (so a pixel lies in at most two tiles
            per axis and the blending ramps add up to 1).
        multiple: the network's input multiple (U-Net: 2**depth; YOLLO: its stride).
        block_tiles: tile cores per block side (>= 1).
        margin: context around a block in pixels (>= 0): objects up to this size are complete in it.
    """

    height: int
    width: int
    tile: int = 512
    overlap: int = 64
    multiple: int = 16
    block_tiles: int = 4
    margin: int = 64

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"image of {self.width} x {self.height} pixels is empty")
        if self.tile < self.multiple or self.tile % self.multiple:
            raise ValueError(f"tile={self.tile} must be a positive multiple of {self.multiple} (the network's input "
                             "multiple)")
        if self.overlap < 0 or self.overlap % (2 * self.multiple) or 2 * self.overlap > self.tile:
            raise ValueError(f"overlap={self.overlap} must be a multiple of {2 * self.multiple} (twice the network's "
                             f"input multiple), >= 0 and at most half of tile={self.tile}")
        if self.block_tiles < 1:
            raise ValueError(f"block_tiles={self.block_tiles} must be >= 1")
        if self.margin < 0:
            raise ValueError(f"margin={self.margin} must be >= 0 pixels")

    @property
    def step(self) -> int:
        return self.tile - self.overlap

    @property
    def pad(self) -> int:
        return self.overlap // 2

    @property
    def rows(self) -> int:
        return math.ceil(self.height / self.step)

    @property
    def cols(self) -> int:
        return math.ceil(self.width / self.step)

    @property
    def block(self) -> int:
        return self.block_tiles * self.step

    @property
    def block_rows(self) -> int:
        return math.ceil(self.height / self.block)

    @property
    def block_cols(self) -> int:
        return math.ceil(self.width / self.block)

    def tile_id(self, row: int, col: int) -> int:
        return row * self.cols + col

    def tile_origin(self, row: int, col: int) -> tuple[int, int]:
        """Top-left pixel of tile (row, col); negative or past the image at its borders."""
        return row * self.step - self.pad, col * self.step - self.pad

    def block_core(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of block (row, col), clipped to the image."""
        top, left = row * self.block, col * self.block
        return top, left, min(top + self.block, self.height), min(left + self.block, self.width)

    def block_region(self, row: int, col: int) -> tuple[int, int, int, int]:
        """The block's core grown by ``margin``, clipped to the image."""
        top, left, bottom, right = self.block_core(row, col)
        return (max(top - self.margin, 0), max(left - self.margin, 0),
                min(bottom + self.margin, self.height), min(right + self.margin, self.width))

    def tiles_over(self, top: int, left: int, bottom: int, right: int) -> list[tuple[int, int]]:
        """Every tile whose area intersects the region (row-major)."""
        def span(start: int, stop: int, count: int) -> range:
            first = max(0, (start + self.pad) // self.step - 1)
            last = min(count - 1, (stop - 1 + self.pad) // self.step)
            return range(first, last + 1)

        rows = [r for r in span(top, bottom, self.rows) if self._overlaps(r, top, bottom)]
        cols = [c for c in span(left, right, self.cols) if self._overlaps(c, left, right)]
        return [(r, c) for r in rows for c in cols]

    def _overlaps(self, index: int, start: int, stop: int) -> bool:
        origin = index * self.step - self.pad
        return origin < stop and origin + self.tile > start

    def block_tile_rows(self, block_row: int) -> range:
        """Tile rows whose tiles the blocks of ``block_row`` read."""
        top, _, bottom, _ = self.block_region(block_row, 0)
        tiles = self.tiles_over(top, 0, bottom, 1)
        return range(tiles[0][0], tiles[-1][0] + 1)

    def owner_tile(self, y: float, x: float) -> int:
        """Id of the tile whose core holds the point (y, x) (pixels of the predicted level)."""
        row = min(max(int(y // self.step), 0), self.rows - 1)
        col = min(max(int(x // self.step), 0), self.cols - 1)
        return self.tile_id(row, col)

    def window(self) -> np.ndarray:
        """(T, T) float32 blending weights. Along each axis: 0 on the outer ``overlap / 4`` pixels (where
        zero padding distorts a convolutional network), a linear ramp over the next ``overlap / 2``, 1 in
        between. Neighbouring tiles' ramps add up to exactly 1, so a constant prediction blends to itself."""
        return np.outer(self._ramp(), self._ramp()).astype(np.float32)

    def _ramp(self) -> np.ndarray:
        t = np.arange(self.tile, dtype=np.float64)
        if self.overlap == 0:
            return np.ones(self.tile)
        dead = self.overlap // 4
        rise = np.clip((t + 0.5 - dead) / (self.overlap - 2 * dead), 0.0, 1.0)
        return np.minimum(rise, rise[::-1])


def tissue_mask(thumbnail: np.ndarray, min_saturation: float = 0.07, max_brightness: float = 0.86,
                dilate: int = 2) -> np.ndarray:
    """Boolean mask of stained tissue in an RGB thumbnail: pixels that are coloured (HSV saturation above
    ``min_saturation``) or dark (brightness below ``max_brightness``), grown by ``dilate`` pixels so tissue
    borders are kept. Glass and white background come out False."""
    from scipy import ndimage as ndi

    rgb = thumbnail.astype(np.float32) / 255.0
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0)
    mask = (saturation > min_saturation) | (high < max_brightness)
    mask = ndi.binary_opening(mask, iterations=1)  # isolated dust pixels
    if dilate > 0:
        mask = ndi.binary_dilation(mask, iterations=dilate)
    return mask


def tiles_with_tissue(grid: TileGrid, mask: np.ndarray, scale: float) -> np.ndarray:
    """(rows, cols) bool: tiles whose area holds tissue in ``mask`` (a thumbnail mask with ``scale`` image
    pixels per mask pixel)."""
    # Cumulative sums let every tile be tested in O(1).
    integral = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    keep = np.zeros((grid.rows, grid.cols), bool)
    for row in range(grid.rows):
        for col in range(grid.cols):
            top, left = grid.tile_origin(row, col)
            y0, x0 = (max(int(v // scale), 0) for v in (top, left))
            y1 = min(int(math.ceil((top + grid.tile) / scale)), mask.shape[0])
            x1 = min(int(math.ceil((left + grid.tile) / scale)), mask.shape[1])
            if y1 > y0 and x1 > x0:
                keep[row, col] = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0] > 0
    return keep
