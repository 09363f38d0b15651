"""Tiled prediction over images of any size: the networks' side (``TilePredictor``) and the engine
(``predict_slide``) that runs them over a ``TileGrid``, stitches blocks and streams the object tables.

Memory is bounded by the tile batch and one block (its blended probabilities and instance map), never by
the image. Work is kept on disk as it finishes (``<output>/parts``): tile predictions until the blocks
that read them are stitched, and every stitched block; an interrupted run resumes from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..io import atomic_write_json
from .export import COLUMNS, GeoJsonStream, ParquetStream, empty_objects, to_list
from .slide import ImageSource, SlideError
from .tiling import TileGrid, tiles_with_tissue, tissue_mask

PRECISIONS = ("32", "bf16")


class PredictError(ValueError):
    """A prediction that cannot run as asked; the message says which setting or file and what is valid."""


# --------------------------------------------------------------------------------------------- networks
class TilePredictor:
    """Runs a network on batches of RGB uint8 tiles.

    Args:
        net: maps (B, 3, T, T) float images in [0, 1] to its outputs.
        multiple: the input multiple the network needs (tile sides and origins are multiples of it).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``32`` or ``bf16`` (autocast).
    """

    task = ""

    def __init__(self, net: torch.nn.Module, multiple: int, device: str = "auto", precision: str = "32"):
        precision = str(precision).removesuffix("-mixed")
        if precision not in PRECISIONS:
            raise PredictError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise PredictError(f"device={device!r} is not a torch device (auto, cpu, cuda, cuda:N)") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise PredictError(f"device={device!r} but CUDA is not available here; use device=cpu")
        self.net = net.to(self.device).eval()
        self.multiple, self.precision = int(multiple), precision

    def forward(self, tiles: np.ndarray) -> torch.Tensor:
        images = torch.from_numpy(tiles).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                     enabled=self.precision == "bf16"):
            return self.net(images).float()

    def settings(self) -> dict[str, Any]:
        return {"task": self.task, "multiple": self.multiple, "precision": self.precision}


class SegmentationTiles(TilePredictor):
    """Foreground probability (1 - P(background)) per pixel; objects from ``postprocess`` (see
    ``inference.postprocess.foreground_to_instances``) at probability >= ``threshold``."""

    task = "segmentation"

    def __init__(self, net: torch.nn.Module, multiple: int, postprocess: dict[str, Any] | None = None,
                 threshold: float = 0.5, **kwargs: Any):
        super().__init__(net, multiple, **kwargs)
        if not 0.0 < threshold < 1.0:
            raise PredictError(f"segmentation.threshold={threshold} must lie in (0, 1) (foreground probability)")
        import inspect

        from .postprocess import METHODS, foreground_to_instances

        self.postprocess, self.threshold = dict(postprocess or {}), float(threshold)
        keys = [k for k in inspect.signature(foreground_to_instances).parameters if k != "foreground"]
        if set(self.postprocess) - set(keys) or self.postprocess.get("method", "components") not in METHODS:
            raise PredictError(f"segmentation.postprocess={self.postprocess} is not valid: keys {', '.join(keys)}; "
                               f"method one of {', '.join(METHODS)}")

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        logits = self.forward(tiles)
        foreground = 1.0 - torch.softmax(logits, dim=1)[:, 0] if logits.shape[1] > 1 else torch.sigmoid(logits[:, 0])
        return foreground.to(torch.float16).cpu().numpy()

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "postprocess": self.postprocess, "threshold": self.threshold}


class DetectionTiles(TilePredictor):
    """Boxes (x0, y0, x1, y1, score) in tile pixels of every grid cell scoring >= ``score_threshold``; NMS
    (``nms_iou``) runs after stitching."""

    task = "detection"

    def __init__(self, net: torch.nn.Module, stride: int, anchor: float, score_threshold: float = 0.5,
                 nms_iou: float = 0.2, **kwargs: Any):
        super().__init__(net, stride, **kwargs)
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 <= nms_iou <= 1.0:
            raise PredictError(f"detection.score_threshold={score_threshold} and detection.nms_iou={nms_iou} must lie "
                               "in [0, 1]")
        self.stride, self.anchor = int(stride), float(anchor)
        self.score_threshold, self.nms_iou = float(score_threshold), float(nms_iou)

    def __call__(self, tiles: np.ndarray) -> list[np.ndarray]:
        from .detection import decode_grid

        boxes, scores = decode_grid(self.forward(tiles), self.stride, self.anchor)
        out = []
        for tile_boxes, tile_scores in zip(boxes, scores):
            keep = tile_scores >= self.score_threshold
            out.append(torch.cat([tile_boxes[keep], tile_scores[keep][:, None]], 1).cpu().numpy().astype(np.float32))
        return out

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "anchor": self.anchor, "score_threshold": self.score_threshold,
                "nms_iou": self.nms_iou}


def load_predictor(checkpoint: str | Path, device: str = "auto", precision: str = "32",
                   threshold: float = 0.5, postprocess: dict[str, Any] | None = None,
                   score_threshold: float | None = None, nms_iou: float | None = None) -> TilePredictor:
    """The tile predictor of an ``ece-train`` checkpoint (segmentation or detection, told by its model).

    ``postprocess`` entries override the run's own (segmentation); ``score_threshold``/``nms_iou`` override
    the run's detection post-processing when given.
    """
    from ..models import MODELS, build_model

    path = Path(checkpoint)
    if not path.is_file():
        raise PredictError(f"checkpoint={path}: no such file (an ece-train run keeps them in <run>/checkpoints/)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise PredictError(f"checkpoint={path}: not a readable PyTorch checkpoint ({error})") from None
    hparams = state.get("hyper_parameters") if isinstance(state, dict) else None
    if not isinstance(hparams, dict) or "model" not in hparams or "state_dict" not in state:
        raise PredictError(f"checkpoint={path}: not an ece-train checkpoint (no hyper_parameters.model / state_dict)")
    model_cfg = dict(hparams["model"])
    name = model_cfg.pop("name", None)
    if name not in MODELS:
        raise PredictError(f"checkpoint={path}: model {name!r} is not one of {', '.join(sorted(MODELS))}")
    net = build_model(name, **model_cfg)
    weights = {k.removeprefix("net."): v for k, v in state["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(weights)
    run_post = dict(hparams.get("postprocess") or {})
    if getattr(net, "task", None) == "detection":
        return DetectionTiles(net, net.stride, net.anchor,
                              score_threshold=run_post.get("score_threshold", 0.5) if score_threshold is None
                              else score_threshold,
                              nms_iou=run_post.get("nms_iou", 0.2) if nms_iou is None else nms_iou,
                              device=device, precision=precision)
    return SegmentationTiles(net, 2 ** net.depth, postprocess={**run_post, **(postprocess or {})},
                             threshold=threshold, device=device, precision=precision)


# ------------------------------------------------------------------------------------------- stitching
def blend_region(grid: TileGrid, region: tuple[int, int, int, int], load: Callable[[int, int], np.ndarray | None],
                 window: np.ndarray) -> np.ndarray:
    """Blended foreground probability (float32) over ``region`` from the tiles that cover it; ``load(row,
    col)`` gives a tile's (T, T) probabilities or None for a tile skipped as background."""
    top, left, bottom, right = region
    total = np.zeros((bottom - top, right - left), np.float32)
    weight = np.zeros_like(total)
    for row, col in grid.tiles_over(*region):
        origin_y, origin_x = grid.tile_origin(row, col)
        y0, x0 = max(origin_y, top), max(origin_x, left)
        y1, x1 = min(origin_y + grid.tile, bottom), min(origin_x + grid.tile, right)
        w = window[y0 - origin_y : y1 - origin_y, x0 - origin_x : x1 - origin_x]
        weight[y0 - top : y1 - top, x0 - left : x1 - left] += w
        probability = load(row, col)
        if probability is not None:
            total[y0 - top : y1 - top, x0 - left : x1 - left] += \
                w * probability[y0 - origin_y : y1 - origin_y, x0 - origin_x : x1 - origin_x].astype(np.float32)
    return total / np.maximum(weight, 1e-12)


def segment_block(grid: TileGrid, block: tuple[int, int], probability: np.ndarray, threshold: float,
                  postprocess: dict[str, Any], downsample: float, polygons: bool = True
                  ) -> tuple[pd.DataFrame, int]:
    """Objects owned by ``block`` from the blended probability of its region: instances of the region,
    kept when their centroid lies in the block's core. Returns the frame (level-0 coordinates) and the
    number of kept objects that touch the region's inner border (larger than the margin: maybe cut)."""
    from scipy import ndimage as ndi

    from .postprocess import foreground_to_instances

    top, left, bottom, right = grid.block_region(*block)
    core = grid.block_core(*block)
    instances = foreground_to_instances(probability >= threshold, **postprocess)
    count = int(instances.max())
    if count == 0:
        return empty_objects(), 0
    flat = instances.ravel()
    rows, cols = np.divmod(np.arange(flat.size), instances.shape[1])
    sizes = np.bincount(flat, minlength=count + 1)[1:].astype(np.float64)
    cy = np.bincount(flat, weights=rows, minlength=count + 1)[1:] / sizes + 0.5 + top
    cx = np.bincount(flat, weights=cols, minlength=count + 1)[1:] / sizes + 0.5 + left
    score = np.bincount(flat, weights=probability.ravel(), minlength=count + 1)[1:] / sizes
    owned = _inside(core, cy, cx)
    slices = ndi.find_objects(instances)
    inner = (top > 0, left > 0, bottom < grid.height, right < grid.width)
    records, cut = [], 0
    for label in np.flatnonzero(owned) + 1:
        sl = slices[label - 1]
        box = (sl[1].start + left, sl[0].start + top, sl[1].stop + left, sl[0].stop + top)
        touches = ((inner[0] and sl[0].start == 0) or (inner[1] and sl[1].start == 0)
                   or (inner[2] and sl[0].stop == instances.shape[0]) or (inner[3] and sl[1].stop == instances.shape[1]))
        cut += bool(touches)
        xs, ys = (_outline(instances[sl] == label, box[0], box[1]) if polygons else ([], []))
        records.append({
            "x": cx[label - 1] * downsample, "y": cy[label - 1] * downsample,
            "x0": box[0] * downsample, "y0": box[1] * downsample, "x1": box[2] * downsample, "y1": box[3] * downsample,
            "area": sizes[label - 1] * downsample**2, "score": score[label - 1],
            "tile_id": grid.owner_tile(cy[label - 1], cx[label - 1]),
            "polygon_x": to_list(np.asarray(xs) * downsample), "polygon_y": to_list(np.asarray(ys) * downsample),
        })
    return _frame(records), cut


def _outline(mask: np.ndarray, left: int, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The outer contour of a mask crop in pixel-edge coordinates of the level, without the points where
    the contour goes straight on (lossless: the marching-squares steps are half pixels in 8 directions)."""
    from skimage.measure import find_contours

    contours = find_contours(np.pad(mask, 1).astype(np.uint8), 0.5)
    if not contours:
        return np.zeros(0), np.zeros(0)
    ring = max(contours, key=len)[:-1]  # closed: the last point repeats the first
    direction = np.sign(np.diff(ring, axis=0, append=ring[:1]))
    turns = (direction != np.roll(direction, 1, axis=0)).any(axis=1)
    ring = ring[turns] if turns.any() else ring
    return ring[:, 1] - 1 + 0.5 + left, ring[:, 0] - 1 + 0.5 + top


def detect_block(grid: TileGrid, block: tuple[int, int], boxes: np.ndarray, nms_iou: float,
                 downsample: float) -> pd.DataFrame:
    """Detections owned by ``block``: NMS over the boxes (x0, y0, x1, y1, score; level pixels, centres in
    the block's region, each from the tile whose core holds its centre), then the boxes whose centre lies
    in the block's core."""
    from torchvision.ops import nms

    if not len(boxes):
        return empty_objects()
    boxes_t = torch.from_numpy(boxes[:, :4]).double()
    kept = nms(boxes_t, torch.from_numpy(boxes[:, 4]).double(), nms_iou).numpy()
    boxes = boxes[np.sort(kept)]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    owned = _inside(grid.block_core(*block), cy, cx)
    records = [{"x": x * downsample, "y": y * downsample, "x0": b[0] * downsample, "y0": b[1] * downsample,
                "x1": b[2] * downsample, "y1": b[3] * downsample,
                "area": (b[2] - b[0]) * (b[3] - b[1]) * downsample**2, "score": b[4],
                "tile_id": grid.owner_tile(y, x), "polygon_x": [], "polygon_y": []}
               for b, x, y in zip(boxes[owned], cx[owned], cy[owned])]
    return _frame(records)


def _inside(rect: tuple[int, int, int, int], y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Points (y, x) in the half-open rectangle (top, left, bottom, right): every point has one owner."""
    top, left, bottom, right = rect
    return (y >= top) & (y < bottom) & (x >= left) & (x < right)


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    if not records:
        return empty_objects()
    frame = pd.DataFrame.from_records(records)
    frame["object_id"] = 0
    frame["class"] = ""
    return frame.astype({k: v for k, v in COLUMNS.items() if v != "string"})


# ---------------------------------------------------------------------------------------------- engine
@dataclass
class PredictOptions:
    """Settings of ``predict_slide`` (the ``ece-predict`` config without its file names).

    Args:
        tile, overlap, block_tiles, margin: see ``TileGrid`` (``margin`` = the largest object side in pixels).
        batch_size: tiles per forward pass.
        tissue: only predict tiles holding tissue (a saturation/brightness mask of a thumbnail); None = on for
            pyramidal slides, off for single-level images.
        polygons: outline polygons of segmented objects (Parquet ``polygon_x/y``, GeoJSON polygons).
        geojson: write ``objects.geojson`` (``geojson_gzip``: ``.geojson.gz``); ``geometry`` point | polygon |
            box (None: polygon for segmentation, point for detection); ``class_name``, ``colour`` (RGB).
        parquet: write ``objects.parquet``.
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
    geojson: bool = True
    geojson_gzip: bool = False
    geometry: str | None = None
    class_name: str = "Nucleus"
    colour: tuple[int, int, int] = (200, 0, 0)
    parquet: bool = True
    probability_map: bool = True
    resume: bool = True
    keep_parts: bool = False
    progress: bool = True

    def validate(self) -> None:
        if self.batch_size < 1:
            raise PredictError(f"batch_size={self.batch_size} must be >= 1")
        if self.geometry not in (None, "point", "polygon", "box"):
            raise PredictError(f"geojson.geometry={self.geometry!r} is not one of point, polygon, box (or null: by task)")
        if len(self.colour) != 3 or not all(0 <= int(c) <= 255 for c in self.colour):
            raise PredictError(f"geojson.colour={list(self.colour)} must be three integers in 0..255 (RGB)")
        if not (self.parquet or self.geojson):
            raise PredictError("parquet=false and geojson.enabled=false: nothing would be written")


def _file_identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _save_atomic(path: Path, array: np.ndarray) -> None:
    partial = path.with_name(path.name + ".partial.npy")
    np.save(partial, array)
    os.replace(partial, path)


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
                "outputs": {k: getattr(options, k) for k in ("parquet", "geojson", "geojson_gzip", "geometry",
                                                             "class_name", "colour", "probability_map")}}
    settings = json.loads(json.dumps(settings, default=str))  # plain JSON, as run.json and summary.json keep it
    fingerprint = _fingerprint(settings)
    parts, summary_path = output / "parts", output / "summary.json"
    if options.resume:
        for path, kind in ((summary_path, "a finished"), (parts / "run.json", "an unfinished")):
            if not path.is_file():
                continue
            previous = json.loads(path.read_text())
            if previous.get("fingerprint") == fingerprint:
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
    atomic_write_json(state_path, {"fingerprint": fingerprint, "settings": settings})

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

    summary = _finish(grid, source, predictor, output, options, fingerprint, settings, block_path, probability_path,
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
                output = _core_boxes(grid, row, col, output)
            _save_atomic(tile_path(row, col), output)
        progress.update(sum(1 for row, _ in batch if row in counted_rows))
    return len(todo)


def _core_boxes(grid: TileGrid, row: int, col: int, boxes: np.ndarray) -> np.ndarray:
    """A tile's boxes moved to level pixels, kept when their centre lies in the tile's core (the cores
    partition the grid cells, so every cell is trusted from exactly one tile)."""
    origin_y, origin_x = grid.tile_origin(row, col)
    boxes = boxes.copy()
    boxes[:, [0, 2]] += origin_x
    boxes[:, [1, 3]] += origin_y
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    # The core, clipped to the image: the last cores reach past it, and padding holds no boxes.
    core = (row * grid.step, col * grid.step, min((row + 1) * grid.step, grid.height),
            min((col + 1) * grid.step, grid.width))
    inside = _inside(core, cy, cx)
    # Clip to the image so a box never leaves it.
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, grid.width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, grid.height)
    return boxes[inside]


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
            _save_atomic(probability_path(*block), np.round(core * 255).astype(np.uint8))
        return segment_block(grid, block, probability, predictor.threshold, predictor.postprocess, downsample,
                             polygons=options.polygons)
    boxes = [b for t in grid.tiles_over(*region) if (b := load(*t)) is not None and len(b)]
    boxes = np.concatenate(boxes) if boxes else np.zeros((0, 5), np.float32)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    boxes = boxes[_inside(region, cy, cx)]
    return detect_block(grid, block, boxes, predictor.nms_iou, downsample), 0


def _write_block(path: Path, frame: pd.DataFrame, cut: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .export import parquet_schema

    schema = parquet_schema().with_metadata({"cut": str(cut)})
    table = pa.Table.from_pandas(frame[list(schema.names)], schema=schema, preserve_index=False)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial)
    os.replace(partial, path)


def _drop_tiles(grid: TileGrid, block_row: int, tile_path: Callable[[int, int], Path]) -> None:
    """Delete tile predictions that no later block reads."""
    first_needed = grid.block_tile_rows(block_row + 1)[0] if block_row + 1 < grid.block_rows else grid.rows
    for row in range(first_needed):
        for col in range(grid.cols):
            tile_path(row, col).unlink(missing_ok=True)


def _finish(grid: TileGrid, source: ImageSource, predictor: TilePredictor, output: Path, options: PredictOptions,
            fingerprint: str, settings: dict[str, Any], block_path: Callable[[int, int], Path],
            probability_path: Callable[[int, int], Path], keep: np.ndarray, predicted_now: int,
            wall_s: float) -> dict[str, Any]:
    import pyarrow.parquet as pq

    segmentation = predictor.task == "segmentation"
    geometry = options.geometry or ("polygon" if segmentation and options.polygons else "point")
    suffix = ".geojson.gz" if options.geojson_gzip else ".geojson"
    metadata = {"input": str(source.path), "level": source.level, "downsample": source.downsample, "mpp": source.mpp,
                "task": predictor.task, "coordinates": "level-0 pixels, pixel edges at integers"}
    parquet = ParquetStream(output / "objects.parquet", metadata) if options.parquet else None
    geojson = GeoJsonStream(output / f"objects{suffix}", geometry, options.class_name, options.colour,
                            source.mpp / source.downsample if source.mpp else None) if options.geojson else None
    count, cut = 0, 0
    try:
        for block_row in range(grid.block_rows):
            for block_col in range(grid.block_cols):
                part = pq.read_table(block_path(block_row, block_col))
                cut += int(part.schema.metadata.get(b"cut", b"0"))
                frame = part.to_pandas()
                frame["object_id"] = np.arange(count, count + len(frame), dtype=np.int64)
                frame["class"] = options.class_name
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
        "fingerprint": fingerprint, "input": str(source.path), "level": source.level, "shape": list(source.shape),
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

    partial = path.with_name(path.name + ".partial")
    resolution = {}
    if source.mpp:
        resolution = {"resolution": (1e4 / source.mpp, 1e4 / source.mpp), "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(partial, bigtiff=grid.height * grid.width > 2**31) as writer:
        writer.write(tiles(), shape=(grid.height, grid.width), dtype=np.uint8, tile=(tile, tile),
                     compression="zlib", photometric="minisblack", **resolution)
    os.replace(partial, path)


__all__ = ["DetectionTiles", "PredictError", "PredictOptions", "SegmentationTiles", "SlideError", "TilePredictor",
           "blend_region", "detect_block", "load_predictor", "predict_slide", "segment_block"]
