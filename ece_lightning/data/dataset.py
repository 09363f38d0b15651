"""Torch dataset over in-memory images and instance maps: whole images, random crops or tiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .samplers import EpochItem, enter_epoch

# H&E background is white: pad images with white and instance maps with 0 (unannotated).
_IMAGE_PAD = 255


def _pad_to(image: np.ndarray, instances: np.ndarray, size: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    height, width = (size, size) if isinstance(size, int) else size
    pad_y, pad_x = max(0, height - image.shape[0]), max(0, width - image.shape[1])
    if not pad_y and not pad_x:
        return image, instances
    image = np.pad(image, ((0, pad_y), (0, pad_x), (0, 0)), constant_values=_IMAGE_PAD)
    return image, np.pad(instances, ((0, pad_y), (0, pad_x)))


def padded_shape(shape: tuple[int, ...], multiple: int) -> tuple[int, int]:
    """(H, W) rounded up to multiples of ``multiple``."""
    return tuple(-(-int(side) // multiple) * multiple for side in shape[:2])  # type: ignore[return-value]


class InstanceMapDataset(Dataset):
    """Serves ``image`` (3, H, W) float in [0, 1], ``target`` (H, W) long foreground, ``instances``
    (H, W) int32, ``index`` (of the source image) and, with ``pixel_ids``, ``pixels`` (H, W) int64: the
    dataset-wide id of the source pixel each sample pixel came from (``offsets[index] + y * W + x``; -1 for
    padding), which follows crops, flips, rotations and transposes, so per-pixel state (ELR's target
    buffer) stays attached to the right pixel. ``num_pixels`` is the number of ids.

    Args:
        images: (H, W, 3) uint8 RGB images (a stacked array or a list of any sizes).
        instances: their integer instance maps: sparse for training/validation, exhaustive for test.
        crop_size: side of square samples; ``None`` serves whole images (they must share a size to batch).
        random_crops: with ``crop_size``, draw a random crop per item (training); otherwise cover each
            image with a grid of non-overlapping tiles (evaluation; the ragged border is left out unless
            the image is smaller than a tile, which is padded).
        samples_per_epoch: number of random crops per epoch (default: one per image).
        transform: training pipeline (``data.transforms.build_train_transform``) that does the random crop
            and the augmentation; its random state is drawn from torch's per item, so Lightning's seeding
            makes runs reproducible. Evaluation datasets never get one.
        pixel_ids: also serve ``pixels`` (only losses with per-pixel state need them; they cost a map per
            sample).
        pad_multiple: whole images (``crop_size`` None) are padded at the bottom and right to multiples of this
            (the network's input multiple), with white and unannotated pixels, and served with ``size``, the
            (H, W) of the image itself, so evaluation can leave the padding out.
        point_boxes: per image, the nominal box side in pixels when its map holds point markers
            (``data.points``; 0.0 = side unknown) or None when it holds masks; given, every sample also has
            ``point_labels`` (bool) and ``point_box`` (float, 0.0 for masks). None: masks throughout, no such keys.
    """

    def __init__(self, images: Sequence[np.ndarray], instances: Sequence[np.ndarray], crop_size: int | None = None,
                 random_crops: bool = False, samples_per_epoch: int | None = None, transform: Any = None,
                 pixel_ids: bool = False, pad_multiple: int = 1, point_boxes: Sequence[float | None] | None = None):
        if len(images) != len(instances):
            raise ValueError(f"{len(images)} images but {len(instances)} instance maps")
        for i, (image, inst) in enumerate(zip(images, instances)):
            if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
                raise ValueError(f"image {i} must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
            if inst.shape != image.shape[:2]:
                raise ValueError(f"instance map {i} is {inst.shape} but its image is {image.shape[:2]}")
        self.images = images
        self.instances = [np.asarray(inst, dtype=np.int32) for inst in instances]
        self.crop_size = crop_size
        self.random_crops = bool(random_crops and crop_size)
        self.samples_per_epoch = int(samples_per_epoch or len(images))
        self.transform = transform
        self.pixel_ids = bool(pixel_ids)
        self.pad_multiple = int(pad_multiple)
        if point_boxes is not None and len(point_boxes) != len(images):
            raise ValueError(f"{len(images)} images but {len(point_boxes)} point_boxes entries")
        self.point_boxes = None if point_boxes is None else list(point_boxes)
        self.offsets = np.cumsum([0] + [int(image.shape[0]) * int(image.shape[1]) for image in images])
        self.num_pixels = int(self.offsets[-1])
        self.tiles: list[tuple[int, int, int]] = []
        if crop_size and not self.random_crops:
            for index, image in enumerate(images):
                rows = max(1, image.shape[0] // crop_size)
                cols = max(1, image.shape[1] // crop_size)
                self.tiles += [(index, r * crop_size, c * crop_size) for r in range(rows) for c in range(cols)]

    @property
    def uniform(self) -> bool:
        """Whether every sample has the same shape and no padding to leave out, so samples batch as they are."""
        if self.crop_size:
            return True
        shapes = {tuple(image.shape[:2]) for image in self.images}
        return len(shapes) == 1 and padded_shape(next(iter(shapes)), self.pad_multiple) == next(iter(shapes))

    def __len__(self) -> int:
        if self.random_crops or self.transform is not None:
            return self.samples_per_epoch
        return len(self.tiles) if self.tiles else len(self.images)

    def _local_ids(self, index: int) -> np.ndarray | None:
        """1-based pixel ids of image ``index`` (0 is left for padding); None when not served."""
        if not self.pixel_ids:
            return None
        height, width = self.images[index].shape[:2]
        return np.arange(1, height * width + 1, dtype=np.int32).reshape(height, width)

    def _sample(self, item: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        if self.transform is not None:
            from .transforms import apply_transform

            index = item % len(self.images)
            out = apply_transform(self.transform, self.images[index], self.instances[index],
                                  seed=int(torch.randint(0, 2**31 - 1, ())), pixel_ids=self._local_ids(index))
            return index, out["image"], out["instances"], out.get("pixel_ids")
        if not self.crop_size:
            shape = padded_shape(self.images[item].shape, self.pad_multiple)
            image, instances = _pad_to(self.images[item], self.instances[item], shape)
            ids = self._local_ids(item)
            return item, image, instances, None if ids is None else _pad_to(self.images[item], ids, shape)[1]
        if self.random_crops:
            index = item % len(self.images)
            image, instances = _pad_to(self.images[index], self.instances[index], self.crop_size)
            y = int(torch.randint(0, image.shape[0] - self.crop_size + 1, ()))
            x = int(torch.randint(0, image.shape[1] - self.crop_size + 1, ()))
        else:
            index, y, x = self.tiles[item]
            image, instances = _pad_to(self.images[index], self.instances[index], self.crop_size)
        window = (slice(y, y + self.crop_size), slice(x, x + self.crop_size))
        ids = self._local_ids(index)
        if ids is not None:
            ids = _pad_to(self.images[index], ids, self.crop_size)[1][window]
        return index, image[window], instances[window], ids

    def __getitem__(self, item: int | EpochItem) -> dict[str, torch.Tensor]:
        if isinstance(item, EpochItem):  # from EpochShuffle: loader workers seed themselves per epoch
            enter_epoch(item.epoch_seed)
            item = item.index
        index, image, instances, local_ids = self._sample(item)
        image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)
        instances_t = torch.from_numpy(np.ascontiguousarray(instances))
        sample = {"image": image_t, "target": (instances_t > 0).long(), "instances": instances_t,
                  "index": torch.tensor(index)}
        if not self.crop_size and self.transform is None:
            sample["size"] = torch.tensor(self.images[index].shape[:2])
        if self.point_boxes is not None:
            side = self.point_boxes[index]
            sample["point_labels"] = torch.tensor(side is not None)
            sample["point_box"] = torch.tensor(float(side or 0.0))
        if local_ids is not None:
            local = torch.from_numpy(np.ascontiguousarray(local_ids)).long()
            sample["pixels"] = torch.where(local > 0, local - 1 + int(self.offsets[index]), -1)
        return sample
