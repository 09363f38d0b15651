"""Datasets with foreground-only masks, split into instances by watershed (``data.targets``).

- TNBC (Naylor et al. 2018): ``Slide_XX/*.png`` images with ``GT_XX/*.png`` binary masks of the same
  name; the slide number is the group for the slide-level split. Cell size 25 px.
- WBC-NuClick (Koohbanani et al. 2020): ``<split>/images/*.png`` with ``<split>/masks/*.png`` of the same
  stem, ``<split>`` being ``Train``/``Test`` (any case; a single folder without split sub-folders is all
  training data). Cell size 70 px.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..targets import watershed_split
from .common import (
    DatasetError,
    DatasetFormat,
    Item,
    Sample,
    check_same_size,
    hint,
    images_in,
    pair_files,
    read_mask,
    read_rgb,
    require_folder,
)


def list_tnbc(root: str | Path, strict: bool = True, skipped: list[str] | None = None, **_: object) -> list[Item]:
    folder = require_folder(Path(root), TNBC)
    slides = {m.group(1): p for p in sorted(folder.iterdir()) if p.is_dir() and (m := re.fullmatch(r"Slide_(\w+)", p.name))}
    if not slides:
        raise DatasetError(f"{folder}: no Slide_XX/ folders. {hint(TNBC)}")
    items = []
    for slide, slide_dir in slides.items():
        gt_dir = folder / f"GT_{slide}"
        if not gt_dir.is_dir():
            message = f"{slide_dir}: no matching {gt_dir.name}/ folder of masks"
            if strict:
                raise DatasetError(f"{message}. {hint(TNBC)}")
            (skipped if skipped is not None else []).append(message)
            continue
        images, masks = images_in(slide_dir), images_in(gt_dir)
        for key in pair_files(images, masks, slide_dir, strict, skipped if skipped is not None else []):
            item_id = key if key.startswith(f"{slide}_") else f"{slide}_{key}"  # TNBC names files 01_1.png
            items.append(Item(id=item_id, image=images[key], annotation=masks[key], group=f"slide_{slide}"))
    return items


def list_wbc(root: str | Path, strict: bool = True, skipped: list[str] | None = None, **_: object) -> list[Item]:
    folder = require_folder(Path(root), WBC_NUCLICK)
    children = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
    sets = [(split, children[split]) for split in ("train", "test") if split in children]
    if not sets and "images" in children:
        sets = [("train", folder)]
    if not sets:
        raise DatasetError(f"{folder}: no Train/ and Test/ folders (nor images/ + masks/). {hint(WBC_NUCLICK)}")
    items = []
    for split, where in sets:
        sub = {p.name.lower(): p for p in where.iterdir() if p.is_dir()}
        if "images" not in sub or "masks" not in sub:
            raise DatasetError(f"{where}: expected images/ and masks/ sub-folders. {hint(WBC_NUCLICK)}")
        images, masks = images_in(sub["images"]), images_in(sub["masks"])
        for key in pair_files(images, masks, where, strict, skipped if skipped is not None else []):
            items.append(Item(id=f"{split}_{key}", image=images[key], annotation=masks[key], split=split))
    return items


def load_foreground(item: Item, cell_size: int, **_: object) -> Sample:
    image = read_rgb(item.image)
    mask = read_mask(item.annotation)
    check_same_size(image, mask, item.annotation, item.image)
    instances = watershed_split(mask, int(cell_size))
    return Sample(item.id, image, instances=instances, meta={"group": item.group, "cell_size": int(cell_size)})


def _load_tnbc(item: Item, cell_size: int = 25, **options: object) -> Sample:
    return load_foreground(item, cell_size)


def _load_wbc(item: Item, cell_size: int = 70, **options: object) -> Sample:
    return load_foreground(item, cell_size)


TNBC = DatasetFormat(
    name="tnbc", list_items=list_tnbc, load_item=_load_tnbc,
    layout="Slide_XX/*.png images with GT_XX/*.png binary masks of the same name",
    source="https://zenodo.org/record/1175282 (Naylor et al. 2018)")
WBC_NUCLICK = DatasetFormat(
    name="wbc_nuclick", list_items=list_wbc, load_item=_load_wbc,
    layout="Train/images/*.png with Train/masks/*.png (foreground masks, same stem), the same under Test/",
    source="https://warwick.ac.uk/fac/cross_fac/tia/data/nuclick/ (Koohbanani et al. 2020)")
