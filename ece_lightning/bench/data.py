"""Training data pipeline throughput: images per second of one loader process (one CPU core)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

GPU_ANCHOR_IMG_S = 383.0  # measured anchor: U-Net 64 training at 512^2 on an H200, bf16 + channels_last + compile


@dataclass
class DataBenchRow:
    dataset: str
    augment: str
    size: int
    images: int
    images_per_s: float

    @property
    def workers_for_gpu_anchor(self) -> int:
        return int(-(-GPU_ANCHOR_IMG_S // self.images_per_s))


def _datamodule(dataset: str, size: int, augment: dict | None):
    from ..data.datamodule import InstanceDataModule
    from ..data.paths import datasets_dir

    common = {"batch_size": 8, "crop_size": size, "crops_per_epoch": 64, "augment": augment}
    if dataset == "synthetic":
        return InstanceDataModule(source="synthetic", num_train=8, num_val=1, num_test=1, image_size=size, **common)
    import os

    cache = os.environ.get("ECE_CACHE") or "data/cache"  # paths.cache_dir's default
    return InstanceDataModule(source="prepared", name="cpm15", format="cpm15_miccai",
                              root=str(datasets_dir() / "cpm15_miccai2015_train"), cache_dir=cache,
                              split={"method": "random", "test": 4, "val": 3}, **common)


def bench_data(dataset: str = "synthetic", size: int = 512, batches: int = 8,
               augment: dict | None = None) -> DataBenchRow:
    """Time ``batches`` training batches of 8 through the loader in the main process (data already in
    memory: reading and preparation are not timed), the way one worker produces them."""
    torch.set_num_threads(1)
    datamodule = _datamodule(dataset, size, augment)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    iterator = iter(loader)
    next(iterator)  # warm-up
    started, images = time.perf_counter(), 0
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        images += batch["image"].shape[0]
    elapsed = time.perf_counter() - started
    name = "paper" if augment and augment.get("enabled") else "crop only"
    return DataBenchRow(dataset, name, size, images, images / elapsed)
