"""LightningDataModule of both tasks: loads a dataset source, makes train/val annotations sparse, serves
loaders of images with their instance maps (segmentation reads the foreground, detection the boxes)."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ..registry import check_arguments
from .dataset import InstanceMapDataset
from .sources import SOURCES, Split
from .sparsify import check_sparsity, sparsify_instances

# Image ids of the sparsifier are offset per split so train and val images never share a draw.
_SPLIT_ID_OFFSET = {"train": 0, "val": 1_000_000}


class InstanceDataModule(pl.LightningDataModule):
    """Train and validation annotations keep a fraction ``sparsity`` of their instances (whole
    objects, seeded per image); the test split stays exhaustive. Every setting is checked when it is built;
    the data itself is read by ``setup``.

    Args:
        name: the dataset's name (metrics, messages; the prepared source's cache folder).
        source: registered dataset source (``data.sources.SOURCES``): ``synthetic`` (generated) or ``prepared``
            (a real dataset read by its native-format reader through the preparation cache).
        sparsity: fraction in (0, 1] of annotated instances kept in train and validation.
        sparsify_seed: seed of the sparse annotation set.
        batch_size: global batch size of the training loader (evaluation uses the same); split evenly over the
            processes of a distributed run.
        num_workers: loader worker processes (0 = in the main process).
        crop_size: train on random square crops of this side and evaluate on tiles of ``eval_tile``
            (for datasets of large or unequal images); ``None`` uses whole images.
        crops_per_epoch: random training crops per epoch (default: one per training image).
        eval_tile: side of the evaluation tiles (default: ``crop_size``), or ``whole``: evaluate whole images
            (padded to ``input_multiple`` and the padding left out of the metrics; one image per batch when their
            sizes differ). Tiles leave out each image's ragged border.
        augment: the ``augment`` config (``conf/augment``); when enabled, training samples go through
            ``data.transforms.build_train_transform`` (crop + the paper's transforms); never val/test.
        stain_augmentation: whether the data is H&E, so the HED stain transform applies (False: WBC-NuClick).
        pixel_ids: serve each training sample's source-pixel ids (``pixels``), for losses with per-pixel state
            (ELR); ``ece-train`` turns it on when the loss needs it.
        pin_memory: page-locked batches for faster host-to-GPU copies (``None``: when CUDA is available).
        persistent_workers: keep loader workers alive between epochs (``None``: when ``num_workers`` > 0).
        shuffle: shuffle the training samples each epoch (off: a fixed order, e.g. to compare a distributed
            run with a single-process one batch by batch). The order and the random draws of each epoch are
            a function of (``loader_seed``, epoch) (``data.samplers.EpochShuffle``), so a resumed run repeats them.
        loader_seed: seed of the training order and of per-epoch random draws (``ece-train`` passes ``seed``).
        input_multiple: the network's input multiple (U-Net: 2**depth), for whole-image evaluation.
        exhaustive_test: whether the test annotations are exhaustive (read by the task: TIL-like test sets report
            exclusive recall only).
        point_labels: train from points (detection only): null (default) keeps the dataset's masks; a mapping
            ``{box_size: <px> | null, box_size_um: <um> | null, mpp: <um/px> | null}`` (``data.points``) makes
            every training and validation object a point, the centroid of its mask where the dataset has masks
            (a points-only dataset needs it); the test split keeps its masks where it has them, so point- and
            mask-trained models are scored against the same truth. ``box_size``: nominal box side per point.
        **source_options: the source's own settings (synthetic: ``num_train``, ``image_size``, ``seed``...;
            prepared: ``format``, ``root``, ``cache_dir``, ``split``, ``strict``, ``reader``).
    """

    def __init__(self, name: str = "synthetic", source: str = "synthetic", sparsity: float = 1.0,
                 sparsify_seed: int = 0, batch_size: int = 8, num_workers: int = 0, crop_size: int | None = None,
                 crops_per_epoch: int | None = None, eval_tile: int | None = None,
                 augment: dict[str, Any] | None = None, stain_augmentation: bool = True, pixel_ids: bool = False,
                 pin_memory: bool | None = None, persistent_workers: bool | None = None, shuffle: bool = True,
                 loader_seed: int = 0, exhaustive_test: bool = True, input_multiple: int = 1,
                 point_labels: dict[str, Any] | None = None, **source_options: Any):
        super().__init__()
        from .points import check_point_labels

        self.name = str(name)
        factory = SOURCES.get(source)
        check_arguments(factory, source_options, prefix="dataset", supplied=("name",))
        self.source = factory(name=name, **source_options)
        self.sparsity = check_sparsity(sparsity)
        self.sparsify_seed = _count("sparsify_seed", sparsify_seed, minimum=0)
        self.batch_size = _count("batch_size", batch_size)
        self.num_workers = _count("num_workers", num_workers, minimum=0)
        self.crop_size = _optional_count("crop_size", crop_size)
        self.crops_per_epoch = _optional_count("crops_per_epoch", crops_per_epoch)
        self.whole_images = eval_tile == "whole"
        self.eval_tile = None if self.whole_images else _optional_count("eval_tile", eval_tile) or self.crop_size
        self.input_multiple = _count("input_multiple", input_multiple)
        self.augment = augment
        self.stain_augmentation = bool(stain_augmentation)
        self.pixel_ids = bool(pixel_ids)
        self.shuffle = bool(shuffle)
        self.loader_seed = int(loader_seed)
        for key, value in (("pin_memory", pin_memory), ("persistent_workers", persistent_workers)):
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"{key}={value!r} must be true, false or null (automatic)")
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = self.num_workers > 0 if persistent_workers is None else persistent_workers
        if self.persistent_workers and self.num_workers == 0:
            raise ValueError("persistent_workers=true needs dataset.num_workers >= 1")
        self.exhaustive_test = bool(exhaustive_test)
        self.point_labels = check_point_labels(point_labels)
        self.point_boxes: dict[str, list[float | None] | None] = {}
        self.datasets: dict[str, InstanceMapDataset] = {}
        self.annotated_objects: dict[str, tuple[int, int]] = {}

    def _sparse(self, split_name: str, split: Split) -> list[np.ndarray]:
        offset = _SPLIT_ID_OFFSET[split_name]
        return [sparsify_instances(inst, self.sparsity, self.sparsify_seed, offset + i)
                for i, inst in enumerate(split.instances)]

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.splits = self.source.load(points=self.point_labels is not None)
        if self.point_labels is not None:
            self.splits = {name: self._as_points(name, split) for name, split in self.splits.items()}
        self.annotations: dict[str, list[np.ndarray]] = {}
        for name, split in self.splits.items():
            instances = self._sparse(name, split) if name in _SPLIT_ID_OFFSET else split.instances
            self.annotations[name] = instances
            if name == "train":
                dataset = InstanceMapDataset(split.images, instances, self.crop_size, random_crops=True,
                                             samples_per_epoch=self.crops_per_epoch, transform=self.train_transform(),
                                             pixel_ids=self.pixel_ids, point_boxes=self.point_boxes.get(name))
            else:
                dataset = self._evaluation_dataset(split.images, instances, self.point_boxes.get(name))
            self.datasets[name] = dataset
            self.annotated_objects[name] = (_count_objects(instances), _count_objects(split.instances))

    def _as_points(self, name: str, split: Split) -> Split:
        """Train and validation objects as point markers (mask centroids); the test split as the dataset has it.
        Records each image's nominal box side (``point_boxes``; None for images that keep masks)."""
        from dataclasses import replace

        from .points import box_side_pixels, markers_from_instances

        if name != "test" and split.labels == "instances":
            split = replace(split, instances=[markers_from_instances(m) for m in split.instances], labels="points")
        ids = split.ids or [f"{name}-{i}" for i in range(len(split))]
        mpps = split.microns_per_pixel or [None] * len(split)
        with_points = split.labels == "points"
        try:
            self.point_boxes[name] = [box_side_pixels(self.point_labels, mpp, image) if with_points else None
                                      for mpp, image in zip(mpps, ids)]
        except ValueError as error:
            from ..errors import DatasetError

            raise DatasetError(f"dataset.{error}") from None
        return split

    def evaluation_dataset(self, split: str) -> tuple[InstanceMapDataset, list[str]]:
        """Evaluation tiles (``eval_tile``, as the val/test loaders serve them) of the images of ``split`` (``train``,
        ``val``, ``test`` or ``all``) with their annotations (sparse in train/val at ``sparsity``), and the ids of
        the source images (the dataset's own ids, or ``<split>-<n>``) in the order of the samples' ``index``."""
        self.setup("test")
        names = list(self.splits) if split == "all" else [split]
        missing = [name for name in names if name not in self.splits]
        if missing:
            raise ValueError(f"split={split!r}: the dataset has no {missing[0]} split (it has {', '.join(self.splits)})")
        images, instances, ids, boxes = [], [], [], []
        for name in names:
            split_data = self.splits[name]
            images += list(split_data.images)
            instances += list(self.annotations[name])
            ids += list(split_data.ids or (f"{name}-{i}" for i in range(len(split_data))))
            boxes += self.point_boxes.get(name) or [None] * len(split_data)
        return self._evaluation_dataset(images, instances, boxes if self.point_labels is not None else None), ids

    def _evaluation_dataset(self, images: list[np.ndarray], instances: list[np.ndarray],
                            point_boxes: list[float | None] | None = None) -> InstanceMapDataset:
        return InstanceMapDataset(images, instances, self.eval_tile, pad_multiple=self.input_multiple,
                                  point_boxes=point_boxes)

    def evaluation_batch_size(self, dataset: InstanceMapDataset) -> int:
        """The batch of evaluation loaders: the per-device batch, or 1 for whole images of different sizes."""
        return self.per_device_batch_size() if dataset.uniform else 1

    @property
    def num_train_pixels(self) -> int:
        """Pixels of the training images (the size of per-pixel loss state such as ELR's targets)."""
        self.setup("fit")
        return self.datasets["train"].num_pixels

    def train_transform(self) -> Any:
        """The augmentation pipeline of training samples, or None when augmentation is off (then the
        dataset's own random crop applies)."""
        if not (self.augment and self.augment.get("enabled", False)):
            return None
        from .transforms import build_train_transform

        return build_train_transform(self.crop_size, self.augment, stain=self.stain_augmentation)

    def _world_size(self) -> int:
        """The trainer's number of processes (1 without a trainer)."""
        return getattr(self.trainer, "world_size", 1) if self.trainer is not None else 1

    def per_device_batch_size(self) -> int:
        """``batch_size`` is the global batch: each of the trainer's processes loads its share."""
        world = self._world_size()
        if self.batch_size % world:
            raise ValueError(f"dataset.batch_size={self.batch_size} is the global batch and must divide evenly over "
                             f"the {world} devices (processes); use a multiple of {world}")
        return self.batch_size // world

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        sampler = None
        world = self._world_size()
        if split != "train" and world > 1:
            if len(self.datasets[split]) >= world:
                from .samplers import EvaluationShard

                sampler = EvaluationShard(self.datasets[split], world, self.trainer.global_rank)
            else:
                # A process without a single item would stop alone (Lightning refuses an empty loader on that
                # rank) while the others wait for it: keep Lightning's padding, which repeats items instead.
                warnings.warn(f"the {split} split has {len(self.datasets[split])} items for {world} processes: some "
                              f"are evaluated twice (Lightning pads the split), so its metrics weigh them double",
                              stacklevel=2)
        elif shuffle:
            from .samplers import EpochShuffle

            trainer = self.trainer
            # The epoch Lightning hands samplers (set_epoch): right when a resumed run first draws its indices,
            # which trainer.current_epoch is not yet with loader workers.
            sampler = EpochShuffle(len(self.datasets[split]), self.loader_seed,
                                   (lambda: trainer.fit_loop.epoch_progress.current.processed)
                                   if trainer is not None else None)
        batch_size = self.per_device_batch_size() if split == "train" else self.evaluation_batch_size(self.datasets[split])
        return DataLoader(self.datasets[split], batch_size=batch_size, sampler=sampler,
                          num_workers=self.num_workers, persistent_workers=self.persistent_workers,
                          pin_memory=self.pin_memory, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def _count(key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{key}={value!r} must be an integer >= {minimum}")
    return int(value)


def _optional_count(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{key}={value!r} must be an integer >= 1 (or null)")
    return int(value)


def _count_objects(instances: np.ndarray) -> int:
    return int(sum(len(np.unique(m)) - (1 if (m == 0).any() else 0) for m in instances))
