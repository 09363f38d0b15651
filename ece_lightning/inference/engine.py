"""The tiled-prediction engine: ``predict_slide`` runs a predictor over a ``TileGrid`` of an image source,
stitches blocks and streams the object tables.

Memory is bounded by the tile batch and one block (its blended probabilities and instance map), never by
the image. Work is kept on disk as it finishes (``<output>/parts``): tile predictions until the blocks
that read them are stitched, and every stitched block; an interrupted run resumes from there.
"""

from __future__ import annotations

import json
import resource
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PredictError
from ..io import atomic_path, atomic_save_npy, atomic_write_json, fingerprint
from .export import GeoJsonStream, ParquetStream, write_probability_tiff
from .predictors import TilePredictor
from .slide import ImageSource
from .stitching import blend_region, core_boxes, detect_block, inside, segment_block
from .tiling import TileGrid, tiles_with_tissue, tissue_mask


@dataclass
class GeoJsonOptions:
    """The QuPath GeoJSON output (``geojson`` in ``conf/predict.yaml``).

    Args:
        enabled: write ``objects.geojson`` (``gzip``: ``objects.geojson.gz``).
        geometry: point | polygon | box (None: polygon for segmentation, point for detection).
        class_name: the objects' classification name; ``colour`` its RGB colour (three integers in 0..255).
    """

    enabled: bool = True
    gzip: bool = False
    geometry: str | None = None
    class_name: str = "Nucleus"
    colour: tuple[int, int, int] = (200, 0, 0)


@dataclass
class PredictOptions:
    """Settings of ``predict_slide``: the ``ece-predict`` config without its file, model and device settings
    (``from_config`` reads them from it).

    Args:
        tile, overlap, block_tiles, margin: see ``TileGrid`` (``margin`` = the largest object side in pixels).
        batch_size: tiles per forward pass.
        tissue: only predict tiles holding tissue (a saturation/brightness mask of a thumbnail); None = on for
            pyramidal slides, off for single-level images.
        polygons: outline polygons of segmented objects (Parquet ``polygon_x/y``, GeoJSON polygons).
        parquet: write ``objects.parquet``.
        geojson: the GeoJSON output (``GeoJsonOptions``).
        probability_map: write ``probability.tif`` (segmentation; uint8 0-255, tiled, deflate).
        resume: continue an interrupted run in the same output folder (False: start over).
        keep_parts: keep ``parts/`` after finishing.
        progress: show a progress bar.
    """

    tile: int = 512
    overlap: int = 64
    block_tiles: int = 4
    margin: int = 64
    batch_size: int = 8
    tissue: bool | None = None
    polygons: bool = True
    parquet: bool = True
    geojson: GeoJsonOptions = field(default_factory=GeoJsonOptions)
    probability_map: bool = True
    resume: bool = True
    keep_parts: bool = False
    progress: bool = True

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PredictOptions:
        """The options among the keys of a (plain) ``ece-predict`` config; other keys are left to the caller."""
        names = {f.name for f in fields(cls)}
        options = {k: v for k, v in config.items() if k in names}
        geojson = dict(options.pop("geojson", None) or {})
        unknown = sorted(set(geojson) - {f.name for f in fields(GeoJsonOptions)})
        if unknown:
            raise PredictError(f"unknown key(s) {', '.join(f'geojson.{k}' for k in unknown)}; valid: "
                               f"{', '.join(f.name for f in fields(GeoJsonOptions))}")
        if "colour" in geojson:
            geojson["colour"] = tuple(geojson["colour"])
        return cls(**options, geojson=GeoJsonOptions(**geojson))

    def validate(self) -> None:
        if self.batch_size < 1:
            raise PredictError(f"batch_size={self.batch_size} must be >= 1")
        geojson = self.geojson
        if geojson.geometry not in (None, "point", "polygon", "box"):
            raise PredictError(f"geojson.geometry={geojson.geometry!r} is not one of point, polygon, box (or null: by "
                               "task)")
        if len(geojson.colour) != 3 or not all(0 <= int(c) <= 255 for c in geojson.colour):
            raise PredictError(f"geojson.colour={list(geojson.colour)} must be three integers in 0..255 (RGB)")
        if not (self.parquet or geojson.enabled):
            raise PredictError("parquet=false and geojson.enabled=false: nothing would be written")

    def output_settings(self) -> dict[str, Any]:
        """What decides the output files (part of a prediction's fingerprint)."""
        g = self.geojson
        return {"parquet": self.parquet, "geojson": g.enabled, "geojson_gzip": g.gzip, "geometry": g.geometry,
                "class_name": g.class_name, "colour": g.colour, "probability_map": self.probability_map}


def _file_identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def predict_slide(predictor: TilePredictor, source: ImageSource, output: str | Path,
                  options: PredictOptions | None = None, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Predict ``source`` tile by tile into the folder ``output``; returns the run summary (also written to
    ``summary.json``).

    Writes ``objects.parquet`` (one row per object, ``export.COLUMNS``), ``objects.geojson[.gz]`` (QuPath),
    ``probability.tif`` (segmentation) and ``summary.json``; each appears only once complete. A finished
    output folder with the same settings is left as it is (its summary is returned with ``skipped``); one
    with other settings, finished or not, is refused unless ``options.resume`` is False, which starts over.
    """
    options = options or PredictOptions()
    options.validate()
    output = Path(output)
    started = time.perf_counter()
    try:
        grid = TileGrid(source.shape[0], source.shape[1], options.tile, options.overlap, predictor.multiple,
                        options.block_tiles, options.margin)
    except ValueError as error:
        raise PredictError(str(error)) from None
    tissue = options.tissue if options.tissue is not None else len(source.level_shapes) > 1
    settings = {"input": _file_identity(source.path) if source.path.is_file() else str(source.path),
                "checkpoint": _file_identity(Path(checkpoint)) if checkpoint else None,
                "level": source.level, "shape": list(source.shape), "grid": asdict(grid), "tissue": tissue,
                "predictor": predictor.settings(), "polygons": options.polygons,
                "outputs": options.output_settings()}
    settings = json.loads(json.dumps(settings, default=str))  # plain JSON, as run.json and summary.json keep it
    digest = fingerprint(settings)
    parts, summary_path = output / "parts", output / "summary.json"
    if options.resume:
        for path, kind in ((summary_path, "a finished"), (parts / "run.json", "an unfinished")):
            if not path.is_file():
                continue
            previous = json.loads(path.read_text())
            if previous.get("fingerprint") == digest:
                if kind == "a finished" and all((output / name).is_file() for name in previous.get("outputs", [])):
                    return {**previous, "skipped": True}
                break
            changed = sorted(k for k in settings if previous.get("settings", {}).get(k) != settings[k])
            raise PredictError(f"output={output} holds {kind} prediction with other settings (differs in: "
                               f"{', '.join(changed) or 'version'}); choose another output folder or pass "
                               "resume=false to replace it")
    else:
        shutil.rmtree(parts, ignore_errors=True)
        for name in ("summary.json", "objects.parquet", "objects.geojson", "objects.geojson.gz", "probability.tif"):
            (output / name).unlink(missing_ok=True)
    state_path = parts / "run.json"
    for sub in ("tiles", "blocks", "probability"):
        (parts / sub).mkdir(parents=True, exist_ok=True)
    atomic_write_json(state_path, {"fingerprint": digest, "settings": settings})

    keep = np.ones((grid.rows, grid.cols), bool)
    if tissue:
        thumbnail, scale = source.thumbnail()
        keep = tiles_with_tissue(grid, tissue_mask(thumbnail), scale)
    segmentation = predictor.task == "segmentation"
    window = grid.window()
    tile_path = lambda r, c: parts / "tiles" / f"r{r}_c{c}.npy"  # noqa: E731
    block_path = lambda r, c: parts / "blocks" / f"r{r}_c{c}.parquet"  # noqa: E731
    probability_path = lambda r, c: parts / "probability" / f"r{r}_c{c}.npy"  # noqa: E731

    progress = _Progress(int(keep.sum()), options.progress, source.describe())
    predicted_now, counted_through = 0, -1  # tile rows up to counted_through are in the progress count
    reader = ThreadPoolExecutor(max_workers=1)  # reads the next batch while the network runs
    try:
        for block_row in range(grid.block_rows):
            pending = [(block_row, c) for c in range(grid.block_cols) if not block_path(block_row, c).is_file()]
            tile_rows = grid.block_tile_rows(block_row)
            new_rows = [r for r in tile_rows if r > counted_through]
            counted_through = max(counted_through, tile_rows[-1])
            todo = [(r, c) for r in tile_rows for c in range(grid.cols)
                    if keep[r, c] and pending and not tile_path(r, c).is_file()]
            todo_new = sum(1 for r, _ in todo if r in new_rows)
            progress.update(int(keep[new_rows].sum()) - todo_new)
            predicted_now += _predict_tiles(predictor, source, grid, todo, options.batch_size, tile_path, reader,
                                            progress, set(new_rows))
            for block in pending:
                frame, cut = _stitch_block(predictor, grid, block, keep, tile_path, window, source.downsample,
                                           options, probability_path if segmentation else None)
                _write_block(block_path(*block), frame, cut)
                progress.objects += len(frame)
                progress.bar.set_postfix(objects=progress.objects, refresh=False)
            _drop_tiles(grid, block_row, tile_path)
    finally:
        reader.shutdown(wait=True)
        progress.close()

    summary = _finish(grid, source, predictor, output, options, digest, settings, block_path, probability_path,
                      keep, predicted_now, time.perf_counter() - started)
    if not options.keep_parts:
        shutil.rmtree(parts, ignore_errors=True)
    return summary


class _Progress:
    """A tqdm bar over the tiles to predict (tiles/s) with the objects found so far."""

    def __init__(self, total: int, enabled: bool, description: str):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="tile", desc="ece-predict", disable=not enabled, dynamic_ncols=True)
        if enabled:
            self.bar.write(f"ece-predict: {description}")
        self.objects = 0

    def update(self, count: int) -> None:
        if count > 0:
            self.bar.update(count)

    def close(self) -> None:
        self.bar.close()


def _predict_tiles(predictor: TilePredictor, source: ImageSource, grid: TileGrid, todo: list[tuple[int, int]],
                   batch_size: int, tile_path: Callable[[int, int], Path], reader: ThreadPoolExecutor,
                   progress: _Progress, counted_rows: set[int]) -> int:
    def read(batch: list[tuple[int, int]]) -> np.ndarray:
        return np.stack([source.read_region(*grid.tile_origin(r, c), grid.tile, grid.tile) for r, c in batch])

    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    pending = reader.submit(read, batches[0]) if batches else None
    for index, batch in enumerate(batches):
        tiles = pending.result()
        if index + 1 < len(batches):
            pending = reader.submit(read, batches[index + 1])
        outputs = predictor(tiles)
        for (row, col), output in zip(batch, outputs):
            if predictor.task == "detection":
                output = core_boxes(grid, row, col, output)
            atomic_save_npy(tile_path(row, col), output)
        progress.update(sum(1 for row, _ in batch if row in counted_rows))
    return len(todo)


def _stitch_block(predictor: TilePredictor, grid: TileGrid, block: tuple[int, int], keep: np.ndarray,
                  tile_path: Callable[[int, int], Path], window: np.ndarray, downsample: float,
                  options: PredictOptions, probability_path: Callable[[int, int], Path] | None
                  ) -> tuple[pd.DataFrame, int]:
    region = grid.block_region(*block)

    def load(row: int, col: int) -> np.ndarray | None:
        if not keep[row, col]:
            return None
        path = tile_path(row, col)
        if not path.is_file():
            raise PredictError(f"{path}: tile prediction missing (the parts folder was changed during the run); "
                               "run again with resume=false")
        return np.load(path)

    if predictor.task == "segmentation":
        probability = blend_region(grid, region, load, window)
        if probability_path is not None:
            top, left, bottom, right = grid.block_core(*block)
            core = probability[top - region[0] : bottom - region[0], left - region[1] : right - region[1]]
            atomic_save_npy(probability_path(*block), np.round(core * 255).astype(np.uint8))
        return segment_block(grid, block, probability, predictor.threshold, predictor.postprocess, downsample,
                             polygons=options.polygons)
    boxes = [b for t in grid.tiles_over(*region) if (b := load(*t)) is not None and len(b)]
    boxes = np.concatenate(boxes) if boxes else np.zeros((0, 5), np.float32)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    boxes = boxes[inside(region, cy, cx)]
    return detect_block(grid, block, boxes, predictor.nms_iou, downsample), 0


def _write_block(path: Path, frame: pd.DataFrame, cut: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .export import parquet_schema

    schema = parquet_schema().with_metadata({"cut": str(cut)})
    table = pa.Table.from_pandas(frame[list(schema.names)], schema=schema, preserve_index=False)
    with atomic_path(path) as partial:
        pq.write_table(table, partial)


def _drop_tiles(grid: TileGrid, block_row: int, tile_path: Callable[[int, int], Path]) -> None:
    """Delete tile predictions that no later block reads."""
    first_needed = grid.block_tile_rows(block_row + 1)[0] if block_row + 1 < grid.block_rows else grid.rows
    for row in range(first_needed):
        for col in range(grid.cols):
            tile_path(row, col).unlink(missing_ok=True)


def _finish(grid: TileGrid, source: ImageSource, predictor: TilePredictor, output: Path, options: PredictOptions,
            digest: str, settings: dict[str, Any], block_path: Callable[[int, int], Path],
            probability_path: Callable[[int, int], Path], keep: np.ndarray, predicted_now: int,
            wall_s: float) -> dict[str, Any]:
    import pyarrow.parquet as pq

    segmentation = predictor.task == "segmentation"
    geometry = options.geojson.geometry or ("polygon" if segmentation and options.polygons else "point")
    suffix = ".geojson.gz" if options.geojson.gzip else ".geojson"
    metadata = {"input": str(source.path), "level": source.level, "downsample": source.downsample, "mpp": source.mpp,
                "task": predictor.task, "coordinates": "level-0 pixels, pixel edges at integers"}
    parquet = ParquetStream(output / "objects.parquet", metadata) if options.parquet else None
    geojson = GeoJsonStream(output / f"objects{suffix}", geometry, options.geojson.class_name, options.geojson.colour,
                            source.mpp / source.downsample if source.mpp else None) if options.geojson.enabled else None
    count, cut = 0, 0
    try:
        for block_row in range(grid.block_rows):
            for block_col in range(grid.block_cols):
                part = pq.read_table(block_path(block_row, block_col))
                cut += int(part.schema.metadata.get(b"cut", b"0"))
                frame = part.to_pandas()
                frame["object_id"] = np.arange(count, count + len(frame), dtype=np.int64)
                frame["class"] = options.geojson.class_name
                count += len(frame)
                if parquet:
                    parquet.write(frame)
                if geojson:
                    geojson.write(frame)
        if parquet:
            parquet.close()
        if geojson:
            geojson.close()
    except BaseException:
        for stream in (parquet, geojson):
            if stream:
                stream.abort()
        raise
    if segmentation and options.probability_map:
        write_probability_tiff(output / "probability.tif", grid, probability_path, source)
    megapixels = grid.height * grid.width / 1e6
    summary = {
        "fingerprint": digest, "input": str(source.path), "level": source.level, "shape": list(source.shape),
        "downsample": source.downsample, "mpp": source.mpp, "task": predictor.task, "objects": count,
        "objects_touching_block_margin": cut, "tiles": grid.rows * grid.cols, "tiles_with_tissue": int(keep.sum()),
        "tiles_predicted_this_run": predicted_now, "wall_s": round(wall_s, 3),
        "megapixels": round(megapixels, 3), "megapixels_per_s": round(megapixels / wall_s, 3) if wall_s else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": str(predictor.device), "precision": predictor.precision,
        "outputs": sorted({p.name for p in output.iterdir() if p.is_file() and not p.name.endswith(".partial")}
                          | {"summary.json"}),
        "settings": settings,
    }
    atomic_write_json(output / "summary.json", summary)
    return summary
