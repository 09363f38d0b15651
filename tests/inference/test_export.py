"""QuPath GeoJSON: a golden file for a small known image, and a third-party parser (``geojson``)."""

import gzip
import json
from pathlib import Path

import geojson
import numpy as np
import pytest

from ece_lightning.bench.slides import ThresholdSegmenter, render
from ece_lightning.inference.engine import GeoJsonOptions, PredictOptions, predict_slide
from ece_lightning.inference.predictors import SegmentationTiles
from ece_lightning.inference.slide import ArraySource

GOLDEN = Path(__file__).parent / "golden" / "three_nuclei.geojson"
DISKS = np.array([[40.0, 50.0, 9.0], [128.0, 127.5, 6.5], [200.0, 30.0, 11.0]])


def _predict(tmp_path: Path, **kwargs) -> dict:
    image = render(DISKS, 0, 0, 256, 256)
    predictor = SegmentationTiles(ThresholdSegmenter(), multiple=4, postprocess={"method": "components"}, device="cpu")
    options = PredictOptions(tile=128, overlap=32, block_tiles=1, progress=False, **kwargs)
    return predict_slide(predictor, ArraySource(image, "three.png", mpp=0.5), tmp_path, options)


def test_geojson_matches_the_golden_file_and_parses(tmp_path):
    _predict(tmp_path)
    text = (tmp_path / "objects.geojson").read_text()
    if not GOLDEN.exists():  # pragma: no cover - writing the golden file is a deliberate, reviewed step
        pytest.fail(f"golden file missing; if the output below is right, save it as {GOLDEN}:\n{text}")
    assert text == GOLDEN.read_text()
    collection = geojson.loads(text)
    assert collection.is_valid and len(collection["features"]) == 3
    for feature in collection["features"]:
        properties = feature["properties"]
        assert feature["geometry"]["type"] == "Polygon" and feature["geometry"].is_valid
        assert properties["objectType"] == "detection"
        assert properties["classification"] == {"name": "Nucleus", "color": [200, 0, 0]}
        assert set(properties["measurements"]) == {"Area um^2", "Score"}
    # The largest disk (r = 11 px at 0.5 um/px) has about pi * 5.5^2 um^2.
    areas = sorted(f["properties"]["measurements"]["Area um^2"] for f in collection["features"])
    assert areas[-1] == pytest.approx(np.pi * 5.5**2, rel=0.05)


def test_points_and_gzip(tmp_path):
    _predict(tmp_path, geojson=GeoJsonOptions(geometry="point", gzip=True, class_name="Tumour", colour=(0, 128, 255)),
             probability_map=False)
    assert not (tmp_path / "objects.geojson").exists() and not (tmp_path / "probability.tif").exists()
    with gzip.open(tmp_path / "objects.geojson.gz", "rt") as handle:
        collection = geojson.loads(handle.read())
    assert collection.is_valid
    points = sorted(tuple(f["geometry"]["coordinates"]) for f in collection["features"])
    expected = sorted((x, y) for y, x, _ in DISKS)
    np.testing.assert_allclose(points, expected, atol=0.35)
    assert collection["features"][0]["properties"]["classification"] == {"name": "Tumour", "color": [0, 128, 255]}
    json.dumps(collection)  # plain JSON types only
