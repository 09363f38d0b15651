"""LightningDataModule: loads a dataset source, makes train/val annotations sparse, serves loaders."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from .dataset import InstanceMapDataset
from .sources import Split, load_splits
from .sparsify import check_sparsity, sparsify_instances

# Image ids of the sparsifier are offset per split so train and val images never share a draw.
_SPLIT_ID_OFFSET = {"train": 0, "val": 1_000_000}


class SegmentationDataModule(pl.LightningDataModule):
    """Train and validation annotations keep a fraction ``sparsity`` of their instances (whole
    objects, seeded per image); the test split stays exhaustive.

    Args:
        source: registered dataset source: ``synthetic`` (generated) or ``prepared`` (a real dataset read by
            its native-format reader through the preparation cache; see ``data.sources.load_prepared``).
        sparsity: fraction in (0, 1] of annotated instances kept in train and validation.
        sparsify_seed: seed of the sparse annotation set.
        batch_size: global batch size of the training loader (evaluation uses the same); split evenly over the
            processes of a distributed run.
        num_workers: loader worker processes (0 = in the main process).
        crop_size: train on random square crops of this side and evaluate on tiles of ``eval_tile``
            (for datasets of large or unequal images); ``None`` uses whole images.
        crops_per_epoch: random training crops per epoch (default: one per training image).
        eval_tile: side of the evaluation tiles (default: ``crop_size``).
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
        **source_options: passed to the source (synthetic: ``num_train``, ``image_size``, ``seed``...;
            prepared: ``name``, ``format``, ``root``, ``cache_dir``, ``split``, ``strict``, ``reader``).
    """

    def __init__(self, source: str = "synthetic", sparsity: float = 1.0, sparsify_seed: int = 0,
                 batch_size: int = 8, num_workers: int = 0, crop_size: int | None = None,
                 crops_per_epoch: int | None = None, eval_tile: int | None = None,
                 augment: dict[str, Any] | None = None, stain_augmentation: bool = True, pixel_ids: bool = False,
                 pin_memory: bool | None = None, persistent_workers: bool | None = None, shuffle: bool = True,
                 loader_seed: int = 0, **source_options: Any):
        super().__init__()
        self.source = source
        self.sparsity = check_sparsity(sparsity)
        self.sparsify_seed = int(sparsify_seed)
        if int(batch_size) < 1:
            raise ValueError(f"dataset.batch_size={batch_size} must be >= 1")
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.crop_size, self.crops_per_epoch = crop_size, crops_per_epoch
        self.eval_tile = eval_tile or crop_size
        self.augment = augment
        self.stain_augmentation = bool(stain_augmentation)
        self.pixel_ids = bool(pixel_ids)
        self.shuffle = bool(shuffle)
        self.loader_seed = int(loader_seed)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.persistent_workers = self.num_workers > 0 if persistent_workers is None else bool(persistent_workers)
        if self.persistent_workers and self.num_workers == 0:
            raise ValueError("dataset.persistent_workers=true needs dataset.num_workers >= 1")
        self.source_options = source_options
        self.datasets: dict[str, InstanceMapDataset] = {}
        self.annotated_objects: dict[str, tuple[int, int]] = {}

    def _sparse(self, split_name: str, split: Split) -> list[np.ndarray]:
        offset = _SPLIT_ID_OFFSET[split_name]
        return [sparsify_instances(inst, self.sparsity, self.sparsify_seed, offset + i)
                for i, inst in enumerate(split.instances)]

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        splits = load_splits(self.source, **self.source_options)
        for name, split in splits.items():
            instances = self._sparse(name, split) if name in _SPLIT_ID_OFFSET else split.instances
            if name == "train":
                dataset = InstanceMapDataset(split.images, instances, self.crop_size, random_crops=True,
                                             samples_per_epoch=self.crops_per_epoch, transform=self.train_transform(),
                                             pixel_ids=self.pixel_ids)
            else:
                dataset = InstanceMapDataset(split.images, instances, self.eval_tile)
            self.datasets[name] = dataset
            self.annotated_objects[name] = (_count_objects(instances), _count_objects(split.instances))

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
        return DataLoader(self.datasets[split], batch_size=self.per_device_batch_size(), sampler=sampler,
                          num_workers=self.num_workers, persistent_workers=self.persistent_workers,
                          pin_memory=self.pin_memory, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def _count_objects(instances: np.ndarray) -> int:
    return int(sum(len(np.unique(m)) - (1 if (m == 0).any() else 0) for m in instances))
