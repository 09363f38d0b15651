"""Dataset sources: each turns a dataset config into train/val/test arrays (registry by name)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .synthetic import SyntheticConfig, generate_split


@dataclass
class Split:
    """Images (H, W, 3) uint8 and their exhaustive instance maps (H, W) int32 of one split: a stacked
    array when all images share a size, else lists."""

    images: np.ndarray | list[np.ndarray]
    instances: np.ndarray | list[np.ndarray]
    ids: list[str] | None = None

    def __len__(self) -> int:
        return len(self.images)


def load_synthetic(seed: int = 0, num_train: int = 96, num_val: int = 16, num_test: int = 32,
                   image_size: int = 128, generator: dict[str, Any] | None = None, **_: Any) -> dict[str, Split]:
    """The embedded synthetic dataset: disjoint tile-index ranges per split, all derived from ``seed``."""
    for name, count in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        if int(count) < 1:
            raise ValueError(f"dataset.{name}={count} must be >= 1")
    options = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in (generator or {}).items()}
    cfg = SyntheticConfig(image_size=int(image_size), **options)
    splits, start = {}, 0
    for split, count in (("train", num_train), ("val", num_val), ("test", num_test)):
        splits[split] = Split(*generate_split(seed, start, int(count), cfg))
        start += int(count)
    return splits


def load_cpm15_miccai(root: str, split_seed: int = 0, num_val: int = 3, num_test: int = 4, **_: Any
                      ) -> dict[str, Split]:
    """CPM-15 (MICCAI-2015 layout, 15 images): a seeded image-level train/val/test split."""
    from .readers.cpm import read_cpm15_miccai

    samples = read_cpm15_miccai(root)
    if not (num_val >= 1 and num_test >= 1 and num_val + num_test < len(samples)):
        raise ValueError(f"dataset.num_val={num_val} and dataset.num_test={num_test} must be >= 1 and leave "
                         f"training images out of {len(samples)}")
    order = np.random.default_rng(split_seed).permutation(len(samples))
    parts = {"test": order[:num_test], "val": order[num_test:num_test + num_val], "train": order[num_test + num_val:]}
    splits = {}
    for split, index in parts.items():
        chosen = [samples[i] for i in sorted(index)]
        splits[split] = Split(images=[image for _, image, _ in chosen], instances=[inst for _, _, inst in chosen],
                              ids=[key for key, _, _ in chosen])
    return splits


SOURCES: dict[str, Callable[..., dict[str, Split]]] = {"synthetic": load_synthetic, "cpm15_miccai": load_cpm15_miccai}


def load_splits(source: str, **kwargs: Any) -> dict[str, Split]:
    if source not in SOURCES:
        raise KeyError(f"unknown dataset source {source!r}; available: {', '.join(sorted(SOURCES))}")
    return SOURCES[source](**kwargs)
