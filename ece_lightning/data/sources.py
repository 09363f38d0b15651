"""Dataset sources: each turns a dataset config into train/val/test arrays (registry by name)."""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=8)
def _generated_split(seed: int, start: int, count: int, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    # A sweep runs many jobs in one process on the same tiles: generate them once (callers get copies).
    return generate_split(seed, start, count, cfg)


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
        images, instances = _generated_split(int(seed), start, int(count), cfg)
        splits[split] = Split(images.copy(), instances.copy())
        start += int(count)
    return splits


def tqdm_progress(description: str):
    """A progress-bar wrapper for ``prepare_dataset`` (tqdm writes to stderr, like Lightning's bar)."""
    from tqdm.auto import tqdm

    return lambda items: tqdm(items, desc=description, unit="img", leave=False)


def load_prepared(name: str, format: str, root: str, cache_dir: str, split: dict[str, Any] | None = None,  # noqa: A002
                  strict: bool = True, reader: dict[str, Any] | None = None, **_: Any) -> dict[str, Split]:
    """A real dataset read through its native-format reader and the preparation cache (prepared on first
    use, reused while current; ``ece-prepare`` does the same ahead of time and prints the summary)."""
    from .prepare import prepare_dataset
    from .readers import DatasetError

    prepared = prepare_dataset(name, format, root, cache_dir, split=split, strict=strict, options=reader,
                               progress=tqdm_progress(f"preparing {name}"))
    if prepared.manifest["annotation"] != "instances":
        raise DatasetError(f"dataset {name} ({format}) is annotated with {prepared.manifest['annotation']} only: "
                           "it has no instance masks, so it cannot train or evaluate segmentation "
                           "(use it for detection / point metrics)")
    splits = {}
    for split_name, ids in prepared.splits.items():
        samples = [prepared.load(i) for i in ids]
        splits[split_name] = Split(images=[s.image for s in samples], instances=[s.instances for s in samples],
                                   ids=list(ids))
    return splits


SOURCES: dict[str, Callable[..., dict[str, Split]]] = {"synthetic": load_synthetic, "prepared": load_prepared}


def load_splits(source: str, **kwargs: Any) -> dict[str, Split]:
    if source not in SOURCES:
        raise KeyError(f"unknown dataset source {source!r}; available: {', '.join(sorted(SOURCES))}")
    return SOURCES[source](**kwargs)
