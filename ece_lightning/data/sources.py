"""Dataset sources (``dataset.source``): each checks its settings when built and serves train/val/test arrays
from ``load()``. ``synthetic`` generates the embedded tiles; ``prepared`` reads a real dataset through its
native-format reader and the preparation cache."""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from ..registry import Registry, check_arguments
from .synthetic import SyntheticConfig, generate_split


@dataclass
class Split:
    """Images (H, W, 3) uint8 and their exhaustive instance maps (H, W) int32 of one split: a stacked
    array when all images share a size, else lists."""

    images: np.ndarray | list[np.ndarray]
    instances: np.ndarray | list[np.ndarray]
    ids: list[str] | None = None
    # "points": the maps hold one-pixel point markers (``data.points``), not masks.
    labels: str = "instances"
    microns_per_pixel: list[float | None] | None = None

    def __len__(self) -> int:
        return len(self.images)


SOURCES: Registry[Any] = Registry("dataset source", "dataset.source")


def _positive_int(key: str, value: Any) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{key}={value!r} must be an integer >= 1")
    return int(value)


@functools.lru_cache(maxsize=8)
def _generated_split(seed: int, start: int, count: int, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    # A sweep runs many jobs in one process on the same tiles: generate them once (callers get copies).
    return generate_split(seed, start, count, cfg)


@SOURCES.register("synthetic")
class SyntheticSource:
    """The embedded synthetic dataset: disjoint tile-index ranges per split, all derived from ``seed``.

    Args:
        name: the dataset's name (metrics and messages).
        seed: seed of the tiles themselves (the same images for every training seed).
        num_train, num_val, num_test: tiles per split (>= 1).
        image_size: tile side in pixels (>= 32).
        generator: appearance ranges, the fields of ``SyntheticConfig`` (empty: defaults).
    """

    def __init__(self, name: str = "synthetic", seed: int = 0, num_train: int = 96, num_val: int = 16,
                 num_test: int = 32, image_size: int = 128, generator: dict[str, Any] | None = None):
        self.name = name
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed={seed!r} must be an integer >= 0")
        self.seed = int(seed)
        self.counts = {split: _positive_int(f"num_{split}", count)
                       for split, count in (("train", num_train), ("val", num_val), ("test", num_test))}
        options = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in (generator or {}).items()}
        check_arguments(SyntheticConfig, options, prefix="generator")
        try:
            self.config = SyntheticConfig(image_size=_positive_int("image_size", image_size), **options)
        except ValueError as error:
            message = str(error)
            raise ValueError(message if message.startswith("image_size") else f"generator.{message}") from None

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def load(self, points: bool = False) -> dict[str, Split]:
        """The splits (``points`` is for sources with point annotations; the tiles have masks)."""
        splits, start = {}, 0
        for split, count in self.counts.items():
            images, instances = _generated_split(self.seed, start, count, self.config)
            splits[split] = Split(images.copy(), instances.copy())
            start += count
        return splits


def tqdm_progress(description: str):
    """A progress-bar wrapper for ``prepare_dataset`` (tqdm writes to stderr, like Lightning's bar)."""
    from tqdm.auto import tqdm

    return lambda items: tqdm(items, desc=description, unit="img", leave=False)


@SOURCES.register("prepared")
class PreparedSource:
    """A real dataset read through its native-format reader and the preparation cache (prepared on first use,
    reused while current; ``ece-prepare`` does the same ahead of time and prints the summary).

    Args:
        name: the dataset's name; its cache is ``cache_dir/name``.
        format: a registered reader (``data.readers.FORMATS``).
        root: the raw dataset folder (checked when the data is loaded, so configs compose without the data).
        cache_dir: where prepared caches live.
        split: ``method`` (auto | given | random), ``by`` (image | group), ``val`` and ``test`` sizes
            (fractions or counts), ``seed`` (``data.splits``).
        strict: refuse unpaired files (False: skip and report them).
        reader: options of the format's reader.
    """

    def __init__(self, name: str, format: str, root: str, cache_dir: str,  # noqa: A002
                 split: dict[str, Any] | None = None, strict: bool = True, reader: dict[str, Any] | None = None):
        from ..errors import ConfigError
        from .readers import FORMATS
        from .splits import check_split

        self.name, self.root, self.cache_dir = str(name), str(root), str(cache_dir)
        self.split = dict(split or {})
        problems = []
        try:
            self.format = FORMATS.get(format)
        except ConfigError as error:
            problems.append(str(error))
        try:
            check_arguments(check_split, self.split, prefix="dataset.split")
            check_split(**self.split)
        except ConfigError as error:
            problems.append(str(error))
        except ValueError as error:
            problems.append(f"dataset.{error}")
        if problems:
            raise ConfigError(*problems)
        self.strict, self.reader = bool(strict), dict(reader or {})

    def prepare(self, force: bool = False):
        """The prepared cache (``data.prepare.PreparedDataset``), made now unless it is current."""
        from .prepare import prepare_dataset
        from .readers.common import hint

        if not Path(self.root).expanduser().is_dir():
            raise DatasetError(f"dataset.root={self.root}: dataset folder not found; put the {self.name} data there "
                               f"or point ECE_DATASETS (or paths.datasets_dir) at the folder that holds it. "
                               f"{hint(self.format)}")
        return prepare_dataset(self.name, self.format.name, self.root, self.cache_dir, split=self.split,
                               strict=self.strict, force=force, options=self.reader,
                               progress=tqdm_progress(f"preparing {self.name}"))

    def load(self, points: bool = False) -> dict[str, Split]:
        """The splits; a dataset annotated with points is served as point markers, which only ``points``
        (detection with ``dataset.point_labels``) accepts."""
        from .points import point_markers

        prepared = self.prepare()
        annotation = prepared.manifest["annotation"]
        if annotation == "mixed":
            raise DatasetError(f"dataset {self.name} ({self.format.name}) mixes images with masks and images with "
                               "points only; give every image the same kind of annotation")
        if annotation != "instances" and not points:
            raise DatasetError(f"dataset {self.name} ({self.format.name}) is annotated with {annotation} only: it has "
                               "no instance masks, so it cannot train or evaluate segmentation; train detection from "
                               "its points (task=detection model=yollo with dataset.point_labels={box_size: <px>})")
        meta = {record["id"]: record.get("meta") or {} for record in prepared.manifest["samples"]}
        splits = {}
        for split_name, ids in prepared.splits.items():
            samples = [prepared.load(i) for i in ids]
            maps = [s.instances if s.instances is not None else point_markers(s.points, s.image.shape[:2])
                    for s in samples]
            splits[split_name] = Split(images=[s.image for s in samples], instances=maps, ids=list(ids),
                                       labels="instances" if annotation == "instances" else "points",
                                       microns_per_pixel=[meta[i].get("microns_per_pixel") for i in ids])
        return splits
