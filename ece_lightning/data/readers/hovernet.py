"""The ``Images/*.png`` + ``Labels/*.mat`` layout (CoNSeP, and CPM15/CPM17 as distributed with HoVer-Net).

The .mat holds ``inst_map`` (H, W) instance labels; CoNSeP adds ``type_map``, ``inst_type`` and
``inst_centroid``, of which the per-class object counts go into the sample's metadata. The split the
dataset gives is read from ``Train``/``Test`` sub-folders (any case) when present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import (
    DatasetError,
    DatasetFormat,
    Item,
    Sample,
    as_instance_map,
    by_stem,
    check_same_size,
    format_listing_with_itself,
    hint,
    load_mat,
    pair_files,
    read_rgb,
    require_folder,
)

_SPLITS = ("train", "test")


def _subfolder(folder: Path, name: str) -> Path | None:
    matches = [p for p in folder.iterdir() if p.is_dir() and p.name.lower() == name]
    return matches[0] if matches else None


def _sets(root: Path) -> list[tuple[str | None, Path]]:
    """(given split or None, folder holding Images/ and Labels/)."""
    if _subfolder(root, "images") is not None:
        return [(None, root)]
    sets = [(split, sub) for split in _SPLITS if (sub := _subfolder(root, split)) is not None]
    return [(split, sub) for split, sub in sets if _subfolder(sub, "images") is not None]


def list_hovernet(root: str | Path, fmt: DatasetFormat, strict: bool = True, skipped: list[str] | None = None,
                  **_: object) -> list[Item]:
    folder = require_folder(Path(root), fmt)
    sets = _sets(folder)
    if not sets:
        raise DatasetError(f"{folder}: no Images/ folder (nor Train/Images, Test/Images). {hint(fmt)}")
    items = []
    for split, where in sets:
        images_dir, labels_dir = _subfolder(where, "images"), _subfolder(where, "labels")
        if labels_dir is None:
            raise DatasetError(f"{where}: has Images/ but no Labels/ folder of .mat files. {hint(fmt)}")
        images = by_stem(p for p in images_dir.iterdir() if p.suffix.lower() in {".png", ".tif", ".tiff"})
        labels = by_stem(labels_dir.glob("*.mat"))
        if not images:
            raise DatasetError(f"{images_dir}: no .png images. {hint(fmt)}")
        for key in pair_files(images, labels, where, strict, skipped if skipped is not None else []):
            item_id = f"{split}_{key}" if split else key
            items.append(Item(id=item_id, image=images[key], annotation=labels[key], split=split or "train"))
    return items


def load_hovernet(item: Item, **_: object) -> Sample:
    image = read_rgb(item.image)
    variables = load_mat(item.annotation, required=("inst_map",))
    instances = as_instance_map(variables["inst_map"], item.annotation)
    check_same_size(image, instances, item.annotation, item.image)
    meta: dict[str, object] = {}
    if "inst_type" in variables:
        types, counts = np.unique(np.asarray(variables["inst_type"]).ravel().astype(int), return_counts=True)
        meta["objects_per_type"] = {int(t): int(c) for t, c in zip(types, counts)}
    return Sample(item.id, image, instances=instances, meta=meta)


def _format(name: str, layout: str, source: str) -> DatasetFormat:
    return format_listing_with_itself(name, list_hovernet, load_hovernet, layout, source)


CONSEP = _format(
    "consep", "Train/Images/*.png (RGBA) + Train/Labels/*.mat (inst_map, type_map, inst_type, inst_centroid), "
    "the same under Test/", "https://warwick.ac.uk/fac/cross_fac/tia/data/hovernet/ (Graham et al. 2019)")
CPM17 = _format(
    "cpm17", "train/Images/*.png + train/Labels/*.mat (inst_map), the same under test/ (HoVer-Net release)",
    "the HoVer-Net data page https://warwick.ac.uk/fac/cross_fac/tia/data/hovernet/ (Vu et al. 2019)")
CPM15_HOVERNET = _format(
    "cpm15_hovernet", "Images/*.png + Labels/*.mat (inst_map) (HoVer-Net release)",
    "the HoVer-Net data page https://warwick.ac.uk/fac/cross_fac/tia/data/hovernet/ (Vu et al. 2019)")
