"""The outputs of a prediction: object tables as a Parquet file (one row per object) and QuPath-importable
GeoJSON, both written as streams (a block of objects at a time), so millions of objects never sit in memory together.

Coordinates are level-0 pixels with pixel edges at integers (the centre of pixel (0, 0) is (0.5, 0.5)), the
convention of QuPath and of OpenSlide regions.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import pandas as pd

from ..io import atomic_path, commit, partial_path

if TYPE_CHECKING:
    from .slide import ImageSource
    from .tiling import TileGrid

#: One row per object. ``polygon_x``/``polygon_y`` hold the outline of a segmented object (empty for detections).
COLUMNS: dict[str, str] = {
    "object_id": "int64", "x": "float64", "y": "float64", "x0": "float64", "y0": "float64", "x1": "float64",
    "y1": "float64", "area": "float64", "score": "float32", "class": "string", "tile_id": "int64",
}
POLYGON_COLUMNS = ("polygon_x", "polygon_y")


def parquet_schema():
    """The pyarrow schema of ``objects.parquet``."""
    import pyarrow as pa

    types = {"int64": pa.int64(), "float64": pa.float64(), "float32": pa.float32(), "string": pa.string()}
    fields = [pa.field(name, types[kind], nullable=False) for name, kind in COLUMNS.items()]
    fields += [pa.field(name, pa.list_(pa.float32()), nullable=False) for name in POLYGON_COLUMNS]
    return pa.schema(fields)


def empty_objects() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype="object" if kind == "string" else kind) for name, kind in COLUMNS.items()})
    for name in POLYGON_COLUMNS:
        frame[name] = pd.Series(dtype="object")
    return frame


class ParquetStream:
    """Appends object frames to one Parquet file as row groups; the file appears under its name only when
    ``close()`` succeeds (written under ``io.partial_path`` first)."""

    def __init__(self, path: str | Path, metadata: Mapping[str, Any] | None = None):
        import pyarrow.parquet as pq

        self.path = Path(path)
        self._partial = partial_path(self.path)
        schema = parquet_schema().with_metadata({"ece_lightning": json.dumps(dict(metadata or {}), sort_keys=True)})
        self.schema = schema
        self._writer = pq.ParquetWriter(self._partial, schema, compression="zstd")
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa

        if len(frame):
            table = pa.Table.from_pandas(frame[list(self.schema.names)], schema=self.schema, preserve_index=False)
            self._writer.write_table(table)
            self.rows += len(frame)

    def close(self) -> None:
        self._writer.close()
        commit(self._partial, self.path)

    def abort(self) -> None:
        self._writer.close()
        self._partial.unlink(missing_ok=True)


def _round(value: float) -> float:
    return round(float(value), 2)


def feature(row: Mapping[str, Any], geometry: str, class_name: str, colour: tuple[int, int, int],
            mpp: float | None) -> dict[str, Any]:
    """The QuPath GeoJSON feature of one object row: ``objectType`` "detection", a ``classification`` with
    name and colour, and ``measurements`` (area in um^2 when the resolution is known, else in pixels;
    the score). ``geometry`` is ``point`` (the centroid), ``polygon`` (the outline, or the box when there
    is none) or ``box``."""
    if geometry == "point":
        shape = {"type": "Point", "coordinates": [_round(row["x"]), _round(row["y"])]}
    else:
        xs, ys = row.get("polygon_x"), row.get("polygon_y")
        if geometry == "polygon" and xs is not None and len(xs) >= 3:
            ring = [[_round(x), _round(y)] for x, y in zip(xs, ys)]
        else:
            x0, y0, x1, y1 = (row[k] for k in ("x0", "y0", "x1", "y1"))
            ring = [[_round(x0), _round(y0)], [_round(x1), _round(y0)], [_round(x1), _round(y1)], [_round(x0), _round(y1)]]
        ring.append(ring[0])
        shape = {"type": "Polygon", "coordinates": [ring]}
    area = float(row["area"])
    measurements = {"Area um^2": round(area * mpp * mpp, 3)} if mpp else {"Area px^2": round(area, 2)}
    measurements["Score"] = round(float(row["score"]), 4)
    return {"type": "Feature", "id": f"object-{int(row['object_id'])}", "geometry": shape,
            "properties": {"objectType": "detection", "classification": {"name": class_name, "color": list(colour)},
                           "measurements": measurements}}


class GeoJsonStream:
    """A GeoJSON FeatureCollection written feature by feature (``.geojson`` or gzip-compressed
    ``.geojson.gz``); like ``ParquetStream`` it is renamed into place by ``close()``."""

    def __init__(self, path: str | Path, geometry: str = "point", class_name: str = "Nucleus",
                 colour: tuple[int, int, int] = (200, 0, 0), mpp: float | None = None):
        if geometry not in ("point", "polygon", "box"):
            raise ValueError(f"geojson geometry={geometry!r} is not one of point, polygon, box")
        self.path = Path(path)
        self._partial = partial_path(self.path)
        self.geometry, self.class_name, self.colour, self.mpp = geometry, class_name, tuple(int(c) for c in colour), mpp
        opener = gzip.open if self.path.name.endswith(".gz") else open
        self._file: TextIO = opener(self._partial, "wt", encoding="utf-8")  # type: ignore[assignment]
        self._file.write('{"type": "FeatureCollection", "features": [')
        self.count = 0

    def write_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self._file.write(("\n" if self.count == 0 else ",\n")
                             + json.dumps(feature(row, self.geometry, self.class_name, self.colour, self.mpp)))
            self.count += 1

    def write(self, frame: pd.DataFrame) -> None:
        self.write_rows(frame.to_dict("records"))

    def close(self) -> None:
        self._file.write("\n]}\n")
        self._file.close()
        commit(self._partial, self.path)

    def abort(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


def to_list(values: np.ndarray) -> list[float]:
    return np.asarray(values, np.float32).tolist()


def write_probability_tiff(path: Path, grid: TileGrid, probability_path: Callable[[int, int], Path],
                           source: ImageSource, tile: int = 256) -> None:
    """The stitched foreground probability (uint8, 255 = 1.0) as a tiled, deflate-compressed TIFF, assembled
    one TIFF tile at a time from the block files."""
    import tifffile

    def tiles():
        for top in range(0, grid.height, tile):
            for left in range(0, grid.width, tile):
                out = np.zeros((tile, tile), np.uint8)
                bottom, right = min(top + tile, grid.height), min(left + tile, grid.width)
                for block_row in range(top // grid.block, (bottom - 1) // grid.block + 1):
                    for block_col in range(left // grid.block, (right - 1) // grid.block + 1):
                        b_top, b_left, b_bottom, b_right = grid.block_core(block_row, block_col)
                        part = np.load(probability_path(block_row, block_col), mmap_mode="r")
                        y0, x0 = max(top, b_top), max(left, b_left)
                        y1, x1 = min(bottom, b_bottom), min(right, b_right)
                        out[y0 - top : y1 - top, x0 - left : x1 - left] = \
                            part[y0 - b_top : y1 - b_top, x0 - b_left : x1 - b_left]
                yield out

    resolution = {}
    if source.mpp:
        resolution = {"resolution": (1e4 / source.mpp, 1e4 / source.mpp), "resolutionunit": "CENTIMETER"}
    with atomic_path(path) as partial, tifffile.TiffWriter(partial, bigtiff=grid.height * grid.width > 2**31) as writer:
        writer.write(tiles(), shape=(grid.height, grid.width), dtype=np.uint8, tile=(tile, tile),
                     compression="zlib", photometric="minisblack", **resolution)
