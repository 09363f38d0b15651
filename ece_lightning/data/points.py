"""Point labels (one click per cell) as the data pipeline carries them: each point is a one-pixel *marker*
instance of an instance map, so crops, flips, quarter turns, whole-object sparsification and tiling move or
drop points exactly as they do masks; detection turns each marker into a nominal box of the cell size
(``nominal_boxes``) on the device."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy import ndimage as ndi


def point_markers(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An int32 instance map of ``shape`` with one one-pixel marker per point (ids 1..K in the points' order).

    Args:
        points: (K, 2) (x, y) in pixels, pixel centres at integer values (as the readers give them); points
            outside the image are dropped, two points in one pixel keep the first.
        shape: (H, W) of the image.
    """
    height, width = int(shape[0]), int(shape[1])
    markers = np.zeros((height, width), np.int32)
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if not len(points):
        return markers
    cols, rows = np.floor(points[:, 0] + 0.5).astype(np.int64), np.floor(points[:, 1] + 0.5).astype(np.int64)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    flat = rows[inside] * width + cols[inside]
    _, first = np.unique(flat, return_index=True)  # of points sharing a pixel, the first one stays
    kept = flat[np.sort(first)]
    markers.reshape(-1)[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return markers


def instance_centroids(instances: np.ndarray) -> np.ndarray:
    """(K, 2) float (x, y) centroids, in pixels, of the instances of a map (in increasing id order)."""
    instances = np.asarray(instances)
    ids = np.unique(instances)
    ids = ids[ids > 0]
    if not len(ids):
        return np.zeros((0, 2), np.float32)
    centres = np.asarray(ndi.center_of_mass(np.ones(instances.shape), instances, ids), np.float64).reshape(-1, 2)
    return centres[:, ::-1].astype(np.float32)


def markers_from_instances(instances: np.ndarray) -> np.ndarray:
    """The point-label version of an instance map: each instance replaced by a marker at its centroid."""
    return point_markers(instance_centroids(instances), np.asarray(instances).shape)


def check_point_labels(options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``dataset.point_labels`` settings, checked (None: labels as the dataset has them).

    ``box_size``: nominal box side in pixels of every point (> 0), or null when the cell size is not known
    (then the detector trains objectness and centres only: ``task.fixed_box_size``); ``box_size_um``: the side
    in microns instead, converted per image with its ``microns_per_pixel`` (recorded by the reader) or ``mpp``.
    """
    if options is None:
        return None
    if not isinstance(options, Mapping):
        raise ValueError(f"point_labels={options!r} must be null or a mapping with box_size, box_size_um, mpp")
    unknown = sorted(set(options) - {"box_size", "box_size_um", "mpp"})
    if unknown:
        raise ValueError(f"point_labels.{unknown[0]}: unknown setting; valid: box_size, box_size_um, mpp")
    settings = {"box_size": options.get("box_size"), "box_size_um": options.get("box_size_um"),
                "mpp": options.get("mpp")}
    for key, value in settings.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0):
            raise ValueError(f"point_labels.{key}={value!r} must be a number > 0 or null")
    if settings["box_size"] is not None and settings["box_size_um"] is not None:
        raise ValueError("point_labels: give box_size (pixels) or box_size_um (microns), not both")
    return settings


def box_side_pixels(settings: Mapping[str, Any], microns_per_pixel: float | None, image: str) -> float:
    """The nominal box side of one image in pixels (0.0: unknown, objectness only)."""
    if settings["box_size_um"] is None:
        return float(settings["box_size"] or 0.0)
    mpp = microns_per_pixel or settings["mpp"]
    if not mpp:
        raise ValueError(f"point_labels.box_size_um={settings['box_size_um']}: image {image} records no microns per "
                         "pixel; set dataset.point_labels.mpp=<microns per pixel> or give box_size in pixels")
    return float(settings["box_size_um"]) / float(mpp)


def nominal_boxes(marker_boxes: torch.Tensor, sides: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Boxes of the nominal side around marker centres, clipped to the (H, W) sample.

    Args:
        marker_boxes: (K, 4) x0, y0, x1, y1 of the markers (pixel-edge coordinates; a marker spans one pixel).
        sides: (K,) nominal side of each box in pixels.
        height, width: the sample's size; a box reaching past a border is cut there (as a cell cut by a crop).
    """
    centre = (marker_boxes[:, :2] + marker_boxes[:, 2:]) / 2
    half = sides.to(centre.dtype)[:, None] / 2
    low, high = centre - half, centre + half
    limits = torch.tensor([width, height], dtype=centre.dtype, device=centre.device)
    return torch.cat([low.clamp_min(0), torch.minimum(high, limits)], dim=1)
