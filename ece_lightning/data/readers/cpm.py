"""CPM-15 in the MICCAI-2015 challenge layout: ``imageNN.png`` + ASCII ``imageNN_mask.txt``.

The mask file's first line is ``W H``; then W*H integers follow (whitespace separated, x fastest),
0 = background, 1..N = nucleus id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import (
    DatasetError,
    DatasetFormat,
    Item,
    Sample,
    by_stem,
    check_same_size,
    hint,
    pair_files,
    read_rgb,
    require_folder,
)


def read_cpm15_mask(path: str | Path) -> np.ndarray:
    """(H, W) int32 instance map of a CPM-15 ``*_mask.txt``; errors name the file and the problem."""
    path = Path(path)
    try:
        with path.open("r", encoding="ascii") as handle:
            header = handle.readline().split()
            values = np.array(handle.read().split(), dtype=np.int64)
    except FileNotFoundError:
        raise DatasetError(f"{path}: CPM-15 mask file not found") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise DatasetError(f"{path}: not an ASCII CPM-15 mask (expected integers): {error}") from None
    if len(header) != 2 or not all(token.isdigit() for token in header):
        raise DatasetError(f"{path}: first line must be 'W H' (two positive integers), got {' '.join(header)!r}")
    width, height = int(header[0]), int(header[1])
    if values.size != width * height:
        raise DatasetError(f"{path}: header says {width}x{height} = {width * height} labels but the file holds "
                           f"{values.size}")
    if values.size and values.min() < 0:
        raise DatasetError(f"{path}: negative label {values.min()} (labels must be >= 0)")
    return values.reshape(height, width).astype(np.int32)


def list_cpm15_miccai(root: str | Path, strict: bool = True, skipped: list[str] | None = None, **_: object
                      ) -> list[Item]:
    """Pairs ``imageNN.png`` with ``imageNN_mask.txt``; all images are training images (the split is ours)."""
    folder = require_folder(Path(root), CPM15_MICCAI)
    images = by_stem(folder.glob("image*.png"))
    masks = by_stem(folder.glob("image*_mask.txt"), suffix="_mask")
    if not images and not masks:
        raise DatasetError(f"{folder}: no imageNN.png / imageNN_mask.txt files. {hint(CPM15_MICCAI)}")
    keys = pair_files(images, masks, folder, strict, skipped if skipped is not None else [])
    return [Item(id=key, image=images[key], annotation=masks[key], split="train") for key in keys]


def load_cpm15_miccai(item: Item, **_: object) -> Sample:
    image = read_rgb(item.image)
    instances = read_cpm15_mask(item.annotation)
    check_same_size(image, instances, item.annotation, item.image)
    return Sample(item.id, image, instances=instances)


CPM15_MICCAI = DatasetFormat(
    name="cpm15_miccai",
    list_items=list_cpm15_miccai,
    load_item=load_cpm15_miccai,
    layout="imageNN.png with imageNN_mask.txt side by side (ASCII 'W H' then W*H labels)",
    source="the MICCAI 2015 Computational Precision Medicine nuclear segmentation challenge (Vu et al. 2019)",
)
