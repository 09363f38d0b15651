"""Dataset sources: each turns a dataset config into train/val/test arrays (registry by name)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .synthetic import SyntheticConfig, generate_split


@dataclass
class Split:
    """Images (N, H, W, 3) uint8 and exhaustive instance maps (N, H, W) int32 of one split."""

    images: np.ndarray
    instances: np.ndarray

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


SOURCES: dict[str, Callable[..., dict[str, Split]]] = {"synthetic": load_synthetic}


def load_splits(source: str, **kwargs: Any) -> dict[str, Split]:
    if source not in SOURCES:
        raise KeyError(f"unknown dataset source {source!r}; available: {', '.join(sorted(SOURCES))}")
    return SOURCES[source](**kwargs)
