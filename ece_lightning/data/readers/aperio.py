"""Kumar (2017) and MoNuSeg 2018: ``Tissue Images/*.tif`` + ``Annotations/*.xml`` (Aperio ImageScope XML,
one ``Region`` of ``Vertex X Y`` per nucleus), rasterised to instance maps.

Overlaps are resolved deterministically: polygons are painted from the largest to the smallest area
(ties in file order), so a small nucleus overlapping a large one keeps its pixels. A region with fewer
than three vertices, or that covers no pixel centre, is skipped with a warning and counted.
Layouts recognised under ``root``: the folder holding ``Tissue Images/`` and ``Annotations/`` itself, or
a parent with ``MoNuSeg 2018 Training Data/`` (or ``MoNuSegTrainingData/``, Kumar's ``train/``) and
optionally ``MoNuSegTestData/`` (tif and xml side by side; Kumar's ``test/``) as the given test split.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from .common import (
    DatasetError,
    DatasetFormat,
    Item,
    Sample,
    by_stem,
    format_listing_with_itself,
    hint,
    pair_files,
    read_rgb,
    require_folder,
)

_TRAIN_NAMES = ("tissue images", "tissue_images")
_PARENT_TRAIN = ("monuseg 2018 training data", "monusegtrainingdata", "train", "training")
_PARENT_TEST = ("monusegtestdata", "monuseg 2018 test data", "test")


def _child(folder: Path, names: tuple[str, ...]) -> Path | None:
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name.lower() in names:
            return child
    return None


def _pairs_split_folders(images_dir: Path, xml_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    images = by_stem(p for p in images_dir.iterdir() if p.suffix.lower() in {".tif", ".tiff", ".png"})
    return images, by_stem(xml_dir.glob("*.xml"))


def _sets(root: Path, fmt: DatasetFormat) -> list[tuple[str, Path, Path]]:
    """(given split, images folder, xml folder)."""
    if (tissue := _child(root, _TRAIN_NAMES)) is not None:
        annotations = _child(root, ("annotations",))
        if annotations is None:
            raise DatasetError(f"{root}: has {tissue.name}/ but no Annotations/ folder of .xml files. {hint(fmt)}")
        return [("train", tissue, annotations)]
    sets = []
    if (train := _child(root, _PARENT_TRAIN)) is not None:
        sets += [(split, images, xml) for split, images, xml in _sets(train, fmt)]
    if (test := _child(root, _PARENT_TEST)) is not None:
        inner = _child(test, _TRAIN_NAMES)
        sets.append(("test", inner, _child(test, ("annotations",)) or test) if inner else ("test", test, test))
    if not sets:
        raise DatasetError(f"{root}: no 'Tissue Images/' + 'Annotations/' folders (nor a training-data parent "
                           f"folder). {hint(fmt)}")
    return sets


def _patient(stem: str) -> str:
    match = re.match(r"(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})", stem)
    return match.group(1) if match else stem


def list_aperio(root: str | Path, fmt: DatasetFormat, strict: bool = True, skipped: list[str] | None = None,
                **_: object) -> list[Item]:
    folder = require_folder(Path(root), fmt)
    items = []
    for split, images_dir, xml_dir in _sets(folder, fmt):
        images, annotations = _pairs_split_folders(images_dir, xml_dir)
        if not images and not annotations:
            raise DatasetError(f"{images_dir}: no .tif images and no .xml annotations. {hint(fmt)}")
        for key in pair_files(images, annotations, images_dir, strict, skipped if skipped is not None else []):
            items.append(Item(id=key, image=images[key], annotation=annotations[key], split=split,
                              group=_patient(key)))
    return items


def read_aperio_polygons(path: Path) -> tuple[list[np.ndarray], float | None]:
    """Every Region's vertices as (V, 2) float (x, y) arrays, and ``MicronsPerPixel`` when recorded."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as error:
        raise DatasetError(f"{path}: unreadable Aperio XML ({error})") from None
    if root.tag != "Annotations":
        raise DatasetError(f"{path}: root element is <{root.tag}>, expected <Annotations> (Aperio ImageScope XML)")
    polygons = []
    for number, region in enumerate(root.iter("Region")):
        try:
            vertices = [(float(v.attrib["X"]), float(v.attrib["Y"])) for v in region.iter("Vertex")]
        except (KeyError, ValueError) as error:
            raise DatasetError(f"{path}: Region {region.attrib.get('Id', number)} has a Vertex without numeric "
                               f"X/Y ({error})") from None
        polygons.append(np.array(vertices, dtype=np.float64).reshape(-1, 2))
    mpp = root.attrib.get("MicronsPerPixel")
    try:
        return polygons, float(mpp) if mpp else None
    except ValueError:
        return polygons, None


def rasterise_polygons(polygons: list[np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, list[int]]:
    """Instance map with polygon ``i`` (if kept) labelled ``i + 1``, and the indices of degenerate ones
    (fewer than 3 vertices or no pixel centre inside). Larger polygons are painted first."""
    from skimage.draw import polygon as fill_polygon

    instances = np.zeros(shape, np.int32)
    areas = []
    for vertices in polygons:
        x, y = vertices[:, 0], vertices[:, 1]
        areas.append(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) if len(vertices) >= 3 else 0.0)
    degenerate = []
    for index in sorted(range(len(polygons)), key=lambda i: (-areas[i], i)):
        vertices = polygons[index]
        if len(vertices) < 3:
            degenerate.append(index)
            continue
        rows, cols = fill_polygon(vertices[:, 1], vertices[:, 0], shape=shape)
        if not len(rows):
            degenerate.append(index)
            continue
        instances[rows, cols] = index + 1
    return instances, sorted(degenerate)


def load_aperio(item: Item, **_: object) -> Sample:
    image = read_rgb(item.image)
    polygons, mpp = read_aperio_polygons(item.annotation)
    instances, degenerate = rasterise_polygons(polygons, image.shape[:2])
    warnings = [f"{item.annotation}: region #{i + 1} of {len(polygons)} is degenerate "
                f"({len(polygons[i])} vertices or no pixel inside): skipped" for i in degenerate]
    kept = len(polygons) - len(degenerate)
    visible = int(np.count_nonzero(np.bincount(instances.ravel(), minlength=len(polygons) + 1)[1:]))
    if visible < kept:
        warnings.append(f"{item.annotation}: {kept - visible} polygon(s) fully covered by smaller overlapping ones")
    meta = {"polygons": len(polygons), "degenerate_polygons": len(degenerate), "patient": item.group}
    if mpp:
        meta["microns_per_pixel"] = mpp
        meta["magnification"] = "40x" if mpp < 0.35 else "20x" if mpp < 0.7 else None
    return Sample(item.id, image, instances=instances, meta=meta, warnings=warnings)


def _format(name: str, layout: str, source: str) -> DatasetFormat:
    return format_listing_with_itself(name, list_aperio, load_aperio, layout, source)


MONUSEG = _format(
    "monuseg", "'MoNuSeg 2018 Training Data/Tissue Images/*.tif' + '.../Annotations/*.xml' (Aperio XML), and "
    "'MoNuSegTestData/' with .tif and .xml side by side",
    "https://monuseg.grand-challenge.org/Data/ (Kumar et al. 2017, MICCAI 2018 MoNuSeg)")
KUMAR = _format(
    "kumar", "'Tissue Images/*.tif' + 'Annotations/*.xml' (Aperio XML); optional train/ and test/ sub-folders "
    "holding that pair", "https://nucleisegmentationbenchmark.weebly.com/dataset.html (Kumar et al. 2017)")
