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
