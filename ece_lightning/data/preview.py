"""A PNG grid of training samples as the model sees them (after crop and augmentation), outlines drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from .overlay import draw_outlines

_GAP = 4


def preview_grid(dataset: Dataset, count: int, path: str | Path, columns: int = 4) -> Path:
    """Draw ``count`` samples of ``dataset`` (items 0, 1, ... wrapping around) with their instance
    outlines into one grid image at ``path``; returns the path."""
    from PIL import Image

    tiles = []
    for item in range(int(count)):
        sample = dataset[item % len(dataset)]
        image = np.rint(sample["image"].permute(1, 2, 0).numpy() * 255.0).clip(0, 255).astype(np.uint8)
        tiles.append(draw_outlines(image, sample["instances"].numpy()))
    height, width = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    columns = max(1, min(int(columns), len(tiles)))
    rows = -(-len(tiles) // columns)
    grid = np.full((rows * (height + _GAP) - _GAP, columns * (width + _GAP) - _GAP, 3), 255, np.uint8)
    for index, tile in enumerate(tiles):
        y, x = (index // columns) * (height + _GAP), (index % columns) * (width + _GAP)
        grid[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path
