"""Tiled prediction end to end on synthetic slides with known objects (``bench.slides``)."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import tifffile
import torch
from scipy.spatial import cKDTree

from ece_lightning.bench.slides import ComponentDetector, ThresholdSegmenter, disk_centres, write_disk_slide
from ece_lightning.errors import PredictError
from ece_lightning.inference.engine import GeoJsonOptions, PredictOptions, predict_slide
from ece_lightning.inference.export import parquet_schema
from ece_lightning.inference.predictors import DetectionTiles, SegmentationTiles
from ece_lightning.inference.slide import ArraySource, open_image
from ece_lightning.models import UNet

SIZE = 4096
TILE, OVERLAP, BLOCK_TILES = 512, 64, 4
STEP = TILE - OVERLAP


@pytest.fixture(scope="module")
def big_slide(tmp_path_factory):
    """A 4096 x 4096 tiled pyramidal TIFF of disks, many of them centred on tile-core and block borders."""
    lines = tuple(range(0, SIZE, STEP)) + tuple(range(0, SIZE, STEP * BLOCK_TILES)) + tuple(range(0, SIZE, 256))
    disks = disk_centres(SIZE, spacing=40, on_lines=lines, seed=3)
    path = write_disk_slide(tmp_path_factory.mktemp("slide") / "disks.tif", SIZE, disks, tile=256, levels=2, mpp=0.25)
    return path, disks


def _segmenter():
    return SegmentationTiles(ThresholdSegmenter(), multiple=4, postprocess={"method": "components"}, device="cpu")


def _detector():
    return DetectionTiles(ComponentDetector(stride=8, anchor=16.0), stride=8, anchor=16.0, device="cpu")


def _options(**kwargs):
    return PredictOptions(**{"tile": TILE, "overlap": OVERLAP, "block_tiles": BLOCK_TILES, "progress": False,
                             "tissue": False, **kwargs})


def _assert_each_found_once(objects: pd.DataFrame, disks: np.ndarray, scale: float = 1.0, tolerance: float = 1.0):
    assert len(objects) == len(disks)
    centres = objects[["y", "x"]].to_numpy()
    distance, nearest = cKDTree(centres).query(disks[:, :2])
    assert distance.max() < tolerance * scale, f"object off by {distance.max():.2f} px"
    assert len(np.unique(nearest)) == len(disks)  # no object serves two disks


def test_segmentation_finds_every_object_exactly_once(big_slide, tmp_path):
    path, disks = big_slide
    on_border = np.minimum(disks[:, :2] % STEP, STEP - disks[:, :2] % STEP).min(axis=1) < disks[:, 2]
    assert on_border.sum() > 300  # the test is about objects cut by tile borders
    with open_image(path) as source:
        summary = predict_slide(_segmenter(), source, tmp_path / "out", _options())
    objects = pd.read_parquet(tmp_path / "out" / "objects.parquet")
    _assert_each_found_once(objects, disks)
    assert summary["objects"] == len(disks) and summary["objects_touching_block_margin"] == 0
    # Areas match the disks and outlines close around their centroid.
    np.testing.assert_allclose(objects["area"].to_numpy(), np.pi * disks[cKDTree(disks[:, :2]).query(
        objects[["y", "x"]].to_numpy())[1], 2] ** 2, rtol=0.12)
    first = objects.iloc[0]
    assert len(first["polygon_x"]) >= 6
    assert min(first["polygon_x"]) == pytest.approx(first["x0"]) and max(first["polygon_y"]) == pytest.approx(first["y1"])
    assert not (tmp_path / "out" / "parts").exists()


def test_detection_finds_every_object_exactly_once(big_slide, tmp_path):
    path, disks = big_slide
    with open_image(path) as source:
        predict_slide(_detector(), source, tmp_path / "out", _options())
    objects = pd.read_parquet(tmp_path / "out" / "objects.parquet")
    _assert_each_found_once(objects, disks)
    widths = (objects["x1"] - objects["x0"]).to_numpy()
    assert np.abs(widths - 2 * disks[cKDTree(disks[:, :2]).query(objects[["y", "x"]].to_numpy())[1], 2]).max() < 2.5
    assert not (tmp_path / "out" / "probability.tif").exists()


@pytest.mark.parametrize("make", [_segmenter, _detector], ids=["segmentation", "detection"])
def test_coarser_level_reports_level0_coordinates(big_slide, tmp_path, make):
    path, disks = big_slide
    with open_image(path, mpp=0.5) as source:
        assert source.level == 1
        summary = predict_slide(make(), source, tmp_path / "out", _options(tile=256, overlap=32))
    objects = pd.read_parquet(tmp_path / "out" / "objects.parquet")
    _assert_each_found_once(objects, disks, scale=2.0)
    assert summary["downsample"] == 2.0 and summary["mpp"] == pytest.approx(0.5)


def test_stitched_probability_equals_a_single_pass(tmp_path):
    """A pointwise network: tiling changes nothing. A trained-size U-Net (random weights): the blend of
    overlapping tiles stays within a few grey levels of one pass away from the image border (where tiles
    see white glass and the single pass the network's zero padding)."""
    image = np.random.default_rng(0).integers(0, 256, (600, 520, 3), dtype=np.uint8)
    pointwise = _segmenter()
    predict_slide(pointwise, ArraySource(image), tmp_path / "pointwise", _options(tile=128, overlap=32))
    stitched = tifffile.imread(tmp_path / "pointwise" / "probability.tif").astype(np.float32) / 255
    single = pointwise(image[None])[0].astype(np.float32)
    assert np.abs(stitched - single).max() <= 1 / 255 + 1e-3

    torch.manual_seed(0)
    unet = SegmentationTiles(UNet(base_channels=8, depth=3), multiple=8, device="cpu")
    predict_slide(unet, ArraySource(image), tmp_path / "unet", _options(tile=128, overlap=32, block_tiles=2))
    stitched = tifffile.imread(tmp_path / "unet" / "probability.tif").astype(np.float32) / 255
    single = unet(image[None])[0].astype(np.float32)
    inner = np.abs(stitched - single)[32:-32, 32:-32]
    assert inner.max() < 0.02 and inner.mean() < 0.004


def test_parquet_schema_and_metadata(big_slide, tmp_path):
    path, _ = big_slide
    with open_image(path, level=1) as source:
        predict_slide(_detector(), source, tmp_path / "out", _options(tile=256, overlap=32, geojson=GeoJsonOptions(enabled=False)))
    table = pq.read_table(tmp_path / "out" / "objects.parquet")
    assert table.schema.remove_metadata().equals(parquet_schema())
    metadata = json.loads(table.schema.metadata[b"ece_lightning"])
    assert metadata["level"] == 1 and metadata["downsample"] == 2.0 and metadata["task"] == "detection"
    ids = table.column("object_id").to_numpy()
    np.testing.assert_array_equal(ids, np.arange(len(ids)))
    assert set(table.column("class").to_pylist()) == {"Nucleus"}
    assert not (tmp_path / "out" / "objects.geojson").exists()


class _Crash(RuntimeError):
    pass


class _CrashAfter:
    """Wraps a predictor and raises after ``batches`` batches, like a killed job."""

    def __init__(self, inner, batches):
        self.inner, self.batches, self.calls = inner, batches, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, tiles):
        self.calls += 1
        if self.calls > self.batches:
            raise _Crash("killed")
        return self.inner(tiles)


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path):
    disks = disk_centres(1536, spacing=40, on_lines=tuple(range(0, 1536, 224)), seed=5)
    path = write_disk_slide(tmp_path / "slide.tif", 1536, disks, tile=256, levels=1)
    options = _options(tile=256, overlap=32, block_tiles=2, batch_size=4)
    with open_image(path) as source:
        full = predict_slide(_segmenter(), source, tmp_path / "full", options)
        with pytest.raises(_Crash):
            predict_slide(_CrashAfter(_segmenter(), batches=8), source, tmp_path / "resumed", options)
        # Nothing half-written: only the parts folder.
        assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == ["parts"]
        assert list((tmp_path / "resumed" / "parts" / "blocks").glob("*.parquet"))
        resumed = predict_slide(_segmenter(), source, tmp_path / "resumed", options)
    assert 0 < resumed["tiles_predicted_this_run"] < full["tiles_predicted_this_run"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "full" / "objects.parquet"),
                                  pd.read_parquet(tmp_path / "resumed" / "objects.parquet"))
    assert (tmp_path / "full" / "objects.geojson").read_text() == (tmp_path / "resumed" / "objects.geojson").read_text()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "full" / "probability.tif"),
                                  tifffile.imread(tmp_path / "resumed" / "probability.tif"))
    # A finished folder is left alone; other settings in an unfinished one are refused by name.
    with open_image(path) as source:
        assert predict_slide(_segmenter(), source, tmp_path / "resumed", options)["skipped"]
        with pytest.raises(_Crash):
            predict_slide(_CrashAfter(_segmenter(), batches=1), source, tmp_path / "other", options)
        with pytest.raises(PredictError, match=r"an unfinished prediction with other settings \(differs in: grid\)"):
            predict_slide(_segmenter(), source, tmp_path / "other", _options(tile=256, overlap=64, block_tiles=2))
        fresh = predict_slide(_segmenter(), source, tmp_path / "other",
                              _options(tile=256, overlap=64, block_tiles=2, resume=False, geojson=GeoJsonOptions(enabled=False)))
        assert not (tmp_path / "other" / "objects.geojson").exists()  # nothing stale from before
        with pytest.raises(PredictError, match=r"a finished prediction with other settings.*resume=false to replace"):
            predict_slide(_segmenter(), source, tmp_path / "other", options)
    assert fresh["objects"] == len(disks)


def test_tissue_mask_skips_glass_and_keeps_every_object(tmp_path):
    disks = disk_centres(2048, spacing=40, seed=7, blank_corner=True)
    path = write_disk_slide(tmp_path / "slide.tif", 2048, disks, tile=256, levels=3, blank_corner=True)
    with open_image(path) as source:
        summary = predict_slide(_segmenter(), source, tmp_path / "out", _options(tile=256, overlap=32, tissue=None))
    assert summary["tiles_with_tissue"] < 0.85 * summary["tiles"]  # the glass quarter is skipped
    _assert_each_found_once(pd.read_parquet(tmp_path / "out" / "objects.parquet"), disks)


def test_a_crash_while_finishing_leaves_complete_files_and_resumes(tmp_path, monkeypatch):
    import ece_lightning.inference.engine as engine

    disks = disk_centres(512, spacing=40, seed=9)
    source = open_image(write_disk_slide(tmp_path / "slide.tif", 512, disks, tile=128, levels=1))
    options = _options(tile=128, overlap=32, block_tiles=2)
    original = engine.write_probability_tiff

    def crash(*args, **kwargs):
        raise _Crash("killed while writing the probability map")

    monkeypatch.setattr(engine, "write_probability_tiff", crash)
    with pytest.raises(_Crash):
        predict_slide(_segmenter(), source, tmp_path / "out", options)
    assert not list((tmp_path / "out").glob("*.partial")) and not (tmp_path / "out" / "summary.json").exists()
    monkeypatch.setattr(engine, "write_probability_tiff", original)
    summary = predict_slide(_segmenter(), source, tmp_path / "out", options)
    assert summary["tiles_predicted_this_run"] == 0 and summary["objects"] == len(disks)
    assert (tmp_path / "out" / "probability.tif").is_file()
    source.close()
