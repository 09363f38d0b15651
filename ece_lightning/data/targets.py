"""Targets derived from annotations: instances from foreground-only masks (watershed split), boxes
from instances (numpy per image, or torch per batch on the device for detection targets), the borders
where annotated instances touch, and the power-of-two crop size of the paper's pre-processing."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage as ndi

from ..instances import component_peaks


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
    peaks = component_peaks(distance, components, max(1, int(cell_size) - 1))
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


def touching_borders(instances: torch.Tensor) -> torch.Tensor:
    """Where two annotated instances touch: the pixels of an instance with an 8-neighbour of a *higher* id.

    Marking one side only leaves a one-pixel gap between touching instances and takes nothing from an
    instance that touches none. Args: ``instances`` (B, H, W) integer maps (0 = none; ids below 2**24, exact
    in float32). Returns a bool mask of the same shape."""
    if instances.dim() != 3:
        raise ValueError(f"instance maps must be (B, H, W), got {tuple(instances.shape)}")
    ids = instances.float().unsqueeze(1)
    highest_neighbour = torch.nn.functional.max_pool2d(ids, kernel_size=3, stride=1, padding=1).squeeze(1)
    return (instances > 0) & (highest_neighbour > instances.float())


def power_of_two_below(size: int) -> int:
    """The largest power of two <= ``size`` (paper: images are randomly cropped to it, 1000 -> 512)."""
    if int(size) < 1:
        raise ValueError(f"size={size} must be >= 1")
    return 1 << (int(size).bit_length() - 1)


def instance_boxes(instances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes of every instance of a batch of instance maps, on the maps' device.

    Args:
        instances: (B, H, W) integer instance maps (0 = no object; ids need not be sequential).

    Returns:
        ``boxes`` (K, 4) float32 as (x0, y0, x1, y1) in pixel-edge coordinates (an instance covering
        columns 3..5 has x0 = 3, x1 = 6: the same boxes as ``boxes_from_instances``) and ``image_index``
        (K,) int64, the batch row of each box; ordered by image, then instance id.
    """
    if instances.dim() != 3:
        raise ValueError(f"instance maps must be (B, H, W), got {tuple(instances.shape)}")
    batch, height, width = instances.shape
    device = instances.device
    ids = instances.reshape(batch, -1).long()
    max_id = int(ids.max()) if ids.numel() else 0
    if max_id <= 0:
        return torch.zeros((0, 4), dtype=torch.float32, device=device), torch.zeros(0, dtype=torch.int64, device=device)
    inside = ids > 0
    keys = (torch.arange(batch, device=device)[:, None] * (max_id + 1) + ids)[inside]
    ys = torch.arange(height, device=device).repeat_interleave(width).expand(batch, -1)[inside]
    xs = torch.arange(width, device=device).repeat(height).expand(batch, -1)[inside]
    slots = batch * (max_id + 1)

    def reduce(values: torch.Tensor, how: str, initial: int) -> torch.Tensor:
        out = torch.full((slots,), initial, dtype=torch.int64, device=device)
        return out.scatter_reduce_(0, keys, values, reduce=how, include_self=True)

    x0, x1 = reduce(xs, "amin", width), reduce(xs, "amax", -1)
    y0, y1 = reduce(ys, "amin", height), reduce(ys, "amax", -1)
    present = x1 >= 0
    boxes = torch.stack([x0, y0, x1 + 1, y1 + 1], dim=1)[present].float()
    image_index = torch.div(present.nonzero().squeeze(1), max_id + 1, rounding_mode="floor")
    return boxes, image_index
