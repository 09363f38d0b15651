"""Datasets annotated with points or users' own non-exhaustive annotations.

- CRCHistoPhenotypes (Sirinukunwattana et al. 2016): ``Detection/imgN/imgN.bmp`` with
  ``imgN_detection.mat`` (variable ``detection``: (K, 2) MATLAB x, y, 1-based). Centroids only: usable for
  detection and point-based metrics, not for segmentation. Points are stored 0-based (x - 1, y - 1).
- ``generic`` (TIL-style private data, documented in the README): ``images/*.{png,tif,jpg}`` and either
  ``annotations.csv`` (columns ``image,x,y``: one annotated point per row; optional ``split`` column with
  train/test) or one QuPath GeoJSON ``annotations/<image stem>.geojson`` per image (Point or Polygon
  features; polygons become an instance map, points stay points). Test sets are not exhaustive.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .common import (
    DatasetError,
    DatasetFormat,
    Item,
    Sample,
    by_stem,
    hint,
    images_in,
    load_mat,
    pair_files,
    read_rgb,
    require_folder,
)


def list_crchisto(root: str | Path, strict: bool = True, skipped: list[str] | None = None, **_: object) -> list[Item]:
    folder = require_folder(Path(root), CRCHISTO)
    detection = folder / "Detection" if (folder / "Detection").is_dir() else folder
    image_dirs = sorted(p for p in detection.iterdir() if p.is_dir() and p.name.startswith("img"))
    if not image_dirs:
        raise DatasetError(f"{detection}: no imgN/ folders. {hint(CRCHISTO)}")
    images, annotations = {}, {}
    for image_dir in image_dirs:
        key = image_dir.name
        if (image := image_dir / f"{key}.bmp").is_file():
            images[key] = image
        if (mat := image_dir / f"{key}_detection.mat").is_file():
            annotations[key] = mat
    keys = pair_files(images, annotations, detection, strict, skipped if skipped is not None else [])
    return [Item(id=key, image=images[key], annotation=annotations[key]) for key in keys]


def load_crchisto(item: Item, **_: object) -> Sample:
    image = read_rgb(item.image)
    points = np.asarray(load_mat(item.annotation, required=("detection",))["detection"], dtype=np.float32)
    if points.size == 0:
        points = np.zeros((0, 2), np.float32)
    if points.ndim != 2 or points.shape[1] != 2:
        raise DatasetError(f"{item.annotation}: 'detection' must be a (K, 2) array of x, y; got {points.shape}")
    return Sample(item.id, image, points=_inside(points - 1.0, image, item.annotation))


def _inside(points: np.ndarray, image: np.ndarray, path: Path) -> np.ndarray:
    height, width = image.shape[:2]
    outside = (points[:, 0] < -0.5) | (points[:, 1] < -0.5) | (points[:, 0] > width - 0.5) | (points[:, 1] > height - 0.5)
    if outside.any():
        raise DatasetError(f"{path}: {int(outside.sum())} point(s) outside the {width}x{height} image, "
                           f"e.g. {points[outside][0].tolist()}")
    return points.astype(np.float32)


def list_generic(root: str | Path, strict: bool = True, skipped: list[str] | None = None, **_: object) -> list[Item]:
    folder = require_folder(Path(root), GENERIC)
    images_dir = folder / "images"
    if not images_dir.is_dir():
        raise DatasetError(f"{folder}: no images/ folder. {hint(GENERIC)}")
    images = images_in(images_dir)
    table = folder / "annotations.csv"
    skipped = skipped if skipped is not None else []
    if table.is_file():
        rows = _read_points_csv(table)
        annotated = {name: table for name in rows}
        splits = {name: split for name, (_, split) in rows.items()}
        keys = pair_files(images, annotated, folder, strict, skipped)
        return [Item(id=k, image=images[k], annotation=table, split=splits[k], meta={"csv_key": k}) for k in keys]
    geojson_dir = folder / "annotations"
    if not geojson_dir.is_dir():
        raise DatasetError(f"{folder}: neither annotations.csv nor annotations/*.geojson. {hint(GENERIC)}")
    annotations = by_stem(geojson_dir.glob("*.geojson"))
    keys = pair_files(images, annotations, folder, strict, skipped)
    return [Item(id=k, image=images[k], annotation=annotations[k]) for k in keys]


def _read_points_csv(path: Path) -> dict[str, tuple[list[tuple[float, float]], str | None]]:
    """image stem -> (points, split) from a CSV with columns image, x, y [, split]."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"image", "x", "y"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected image,x,y[,split]")
        rows: dict[str, tuple[list[tuple[float, float]], str | None]] = {}
        for line, row in enumerate(reader, start=2):
            try:
                point = (float(row["x"]), float(row["y"]))
            except (TypeError, ValueError):
                raise DatasetError(f"{path}: line {line}: x={row['x']!r}, y={row['y']!r} are not numbers") from None
            split = (row.get("split") or "").strip().lower() or None
            if split not in (None, "train", "test"):
                raise DatasetError(f"{path}: line {line}: split={split!r}; valid: train, test or empty")
            points, _ = rows.setdefault(Path(row["image"]).stem, ([], split))
            points.append(point)
    return rows


def load_generic(item: Item, **_: object) -> Sample:
    image = read_rgb(item.image)
    meta = {"exhaustive": False}
    if item.annotation.suffix == ".csv":
        points, _ = _read_points_csv(item.annotation)[item.meta["csv_key"]]
        return Sample(item.id, image, points=_inside(np.array(points, np.float32).reshape(-1, 2), image,
                                                      item.annotation), meta=meta)
    return _load_geojson(item, image, meta)


def _load_geojson(item: Item, image: np.ndarray, meta: dict) -> Sample:
    from .aperio import rasterise_polygons

    try:
        data = json.loads(item.annotation.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DatasetError(f"{item.annotation}: unreadable GeoJSON ({error})") from None
    features = data.get("features", []) if isinstance(data, dict) and data.get("type") == "FeatureCollection" \
        else data if isinstance(data, list) else None
    if features is None:
        raise DatasetError(f"{item.annotation}: expected a FeatureCollection or a list of features (QuPath export)")
    points, polygons, warnings = [], [], []
    for number, feature in enumerate(features):
        geometry = (feature or {}).get("geometry") or {}
        kind, coords = geometry.get("type"), geometry.get("coordinates")
        if kind == "Point":
            points.append(coords[:2])
        elif kind == "Polygon":
            polygons.append(np.asarray(coords[0], dtype=np.float64)[:, :2])
        else:
            warnings.append(f"{item.annotation}: feature #{number + 1} has geometry {kind!r} "
                            "(only Point and Polygon are read): skipped")
    if polygons and points:
        raise DatasetError(f"{item.annotation}: mixes {len(points)} Point and {len(polygons)} Polygon features; "
                           "use one kind per dataset")
    if polygons:
        instances, degenerate = rasterise_polygons(polygons, image.shape[:2])
        warnings += [f"{item.annotation}: polygon #{i + 1} is degenerate: skipped" for i in degenerate]
        return Sample(item.id, image, instances=instances, meta=meta, warnings=warnings)
    pts = np.array(points, np.float32).reshape(-1, 2)
    return Sample(item.id, image, points=_inside(pts, image, item.annotation), meta=meta, warnings=warnings)


CRCHISTO = DatasetFormat(
    name="crchisto", list_items=list_crchisto, load_item=load_crchisto, annotation="points",
    layout="Detection/imgN/imgN.bmp with Detection/imgN/imgN_detection.mat (variable 'detection', K x 2)",
    source="https://warwick.ac.uk/fac/cross_fac/tia/data/crchistolabelednucleihe (Sirinukunwattana et al. 2016)")
GENERIC = DatasetFormat(
    name="generic", list_items=list_generic, load_item=load_generic, annotation="any",
    layout="images/*.png|tif|jpg with annotations.csv (image,x,y[,split]) or annotations/<stem>.geojson "
           "(QuPath export: Point or Polygon features)",
    source="your own data (README, 'Your own data')")
