"""Torch dataset over in-memory image/instance arrays."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class InstanceMapDataset(Dataset):
    """Serves (image, foreground target, instance map, index) for segmentation.

    Args:
        images: (N, H, W, 3) uint8 RGB.
        instances: (N, H, W) integer instance maps: sparse for training/validation, exhaustive for
            test (whatever annotation the split has; 0 = background or unannotated).
    """

    def __init__(self, images: np.ndarray, instances: np.ndarray):
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
        if instances.shape != images.shape[:3]:
            raise ValueError(f"instance maps {instances.shape} do not match images {images.shape[:3]}")
        self.images = images
        self.instances = instances.astype(np.int32, copy=False)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(np.ascontiguousarray(self.images[index].transpose(2, 0, 1))).float().div_(255.0)
        instances = torch.from_numpy(self.instances[index])
        return {
            "image": image,
            "target": (instances > 0).long(),
            "instances": instances,
            "index": torch.tensor(index),
        }
