"""CPM-15 in the MICCAI-2015 challenge layout: ``imageNN.png`` + ASCII ``imageNN_mask.txt``.

The mask file's first line is ``W H``; then W*H integers follow (whitespace separated, x fastest),
0 = background, 1..N = nucleus id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_cpm15_mask(path: str | Path) -> np.ndarray:
    """(H, W) int32 instance map of a CPM-15 ``*_mask.txt``; errors name the file and the problem."""
    path = Path(path)
    try:
        with path.open("r", encoding="ascii") as handle:
            header = handle.readline().split()
            values = np.array(handle.read().split(), dtype=np.int64)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: CPM-15 mask file not found") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path}: not an ASCII CPM-15 mask (expected integers): {error}") from None
    if len(header) != 2 or not all(token.isdigit() for token in header):
        raise ValueError(f"{path}: first line must be 'W H' (two positive integers), got {' '.join(header)!r}")
    width, height = int(header[0]), int(header[1])
    if values.size != width * height:
        raise ValueError(f"{path}: header says {width}x{height} = {width * height} labels but the file holds {values.size}")
    if values.size and values.min() < 0:
        raise ValueError(f"{path}: negative label {values.min()} (labels must be >= 0)")
    return values.reshape(height, width).astype(np.int32)


CPM15_SOURCE_HINT = (
    "expected the MICCAI-2015 CPM training layout: imageNN.png with imageNN_mask.txt side by side "
    "(CPM-15 is distributed by the MICCAI 2015 Computational Precision Medicine challenge; see Vu et al. 2019)"
)


def read_cpm15_miccai(folder: str | Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Every (image id, RGB uint8 image, int32 instance map) of a CPM-15 MICCAI-layout folder, sorted.

    Raises FileNotFoundError/ValueError naming the folder or file: missing folder, no images, an image
    without mask or a mask without image, an unreadable image, a mask whose size differs from its image.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: CPM-15 folder not found; {CPM15_SOURCE_HINT}")
    images = {p.stem: p for p in folder.glob("image*.png")}
    masks = {p.name.removesuffix("_mask.txt"): p for p in folder.glob("image*_mask.txt")}
    if not images:
        raise FileNotFoundError(f"{folder}: no imageNN.png files; {CPM15_SOURCE_HINT}")
    if set(images) != set(masks):
        lonely = sorted(f"{images[k].name} (no mask)" for k in set(images) - set(masks))
        lonely += sorted(f"{masks[k].name} (no image)" for k in set(masks) - set(images))
        raise ValueError(f"{folder}: unpaired files: {', '.join(lonely)}")
    samples = []
    for key in sorted(images):
        try:
            with Image.open(images[key]) as handle:
                image = np.asarray(handle.convert("RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise ValueError(f"{images[key]}: unreadable image ({error})") from None
        instances = read_cpm15_mask(masks[key])
        if instances.shape != image.shape[:2]:
            raise ValueError(f"{masks[key]}: mask is {instances.shape[1]}x{instances.shape[0]} but "
                             f"{images[key].name} is {image.shape[1]}x{image.shape[0]} (W x H)")
        samples.append((key, image, instances))
    return samples
