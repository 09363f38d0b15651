"""Targets derived from annotations: instances from foreground-only masks (watershed split), boxes
from instances, and the power-of-two crop size of the paper's pre-processing. Pure numpy/scipy."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def watershed_split(foreground: np.ndarray, cell_size: int) -> np.ndarray:
    """Instance map (int32, 0 = background) from a foreground-only mask by marker watershed.

    Markers are the local maxima of the Euclidean distance transform that lie at least ``cell_size``
    pixels apart (Chebyshev distance; ``peak_local_max(min_distance=cell_size - 1)``, so two touching
    cells whose centres are exactly one cell size apart keep two markers), objects on the image border
    included. A connected component without such a maximum gets one marker at its
    deepest pixel, so every foreground pixel ends up in an instance.

    Args:
        foreground: 2-D mask; any non-zero value is foreground.
        cell_size: typical cell diameter in pixels (paper: 25 for TNBC, 70 for WBC-NuClick), >= 1.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    if int(cell_size) < 1:
        raise ValueError(f"cell_size={cell_size} must be >= 1 pixel")
    mask = np.asarray(foreground) != 0
    if mask.ndim != 2:
        raise ValueError(f"foreground mask must be 2-D, got shape {mask.shape}")
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    distance = ndi.distance_transform_edt(mask)
    components, count = ndi.label(mask)
    peaks = peak_local_max(distance, min_distance=max(1, int(cell_size) - 1), labels=components, exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    covered = np.zeros(count + 1, bool)
    covered[components[tuple(peaks.T)]] = True
    next_label = len(peaks) + 1
    for component in np.flatnonzero(~covered[1:]) + 1:
        deepest = ndi.maximum_position(distance, components, component)
        markers[deepest] = next_label
        next_label += 1
    return watershed(-distance, markers, mask=mask).astype(np.int32)


def boxes_from_instances(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 4) float32 boxes as (centre x, centre y, width, height) in pixels, and their (K,) instance
    ids, one per instance present. A box spans whole pixels: an instance covering columns x0..x1
    (inclusive) has width x1 - x0 + 1 and centre (x0 + x1 + 1) / 2 in pixel-edge coordinates."""
    instances = np.asarray(instances)
    ids = np.unique(instances)
    ids = ids[ids > 0]
    if not len(ids):
        return np.zeros((0, 4), np.float32), ids.astype(np.int64)
    slices = ndi.find_objects(instances.astype(np.int64), max_label=int(ids.max()))
    boxes = np.empty((len(ids), 4), np.float32)
    for row, label in enumerate(ids):
        ys, xs = slices[label - 1]
        boxes[row] = ((xs.start + xs.stop) / 2, (ys.start + ys.stop) / 2, xs.stop - xs.start, ys.stop - ys.start)
    return boxes, ids.astype(np.int64)


def power_of_two_below(size: int) -> int:
    """The largest power of two <= ``size`` (paper: images are randomly cropped to it, 1000 -> 512)."""
    if int(size) < 1:
        raise ValueError(f"size={size} must be >= 1")
    return 1 << (int(size).bit_length() - 1)
