"""Training detection from points through the CLI: a `generic` points dataset (CSV and GeoJSON) trains and
evaluates end to end, mask datasets train from their centroids, and what cannot work is refused up front."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ece_lightning.modules import DetectionModule

from ..data import native
from .helpers import run_cli

TINY_DETECTOR = ["task=detection", "model=yollo", "model.base_channels=4", "model.depth=2", "model.anchor=8",
                 "trainer.max_epochs=2", "dataset.batch_size=2"]
POINTS = ["task.metrics.point_radius=4"]


def _nuclei_image(seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A white tile with dark 8-px nuclei and their centres (x, y)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(6, size - 6, (6, 2))
    yy, xx = np.mgrid[:size, :size]
    image = np.full((size, size, 3), 235, np.uint8)
    for x, y in centres:
        image[(xx - x) ** 2 + (yy - y) ** 2 <= 16] = (90, 40, 120)
    return image, centres


def write_generic_points(root, kind: str, count: int = 6):
    """The `generic` layout with point labels: images/*.png and annotations.csv or annotations/<stem>.geojson."""
    (root / "images").mkdir(parents=True)
    rows = ["image,x,y"]
    if kind == "geojson":
        (root / "annotations").mkdir()
    for i in range(count):
        image, centres = _nuclei_image(i)
        Image.fromarray(image).save(root / "images" / f"tile{i}.png")
        rows += [f"tile{i}.png,{x:.1f},{y:.1f}" for x, y in centres]
        if kind == "geojson":
            features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(x), float(y)]}}
                        for x, y in centres]
            (root / "annotations" / f"tile{i}.geojson").write_text(
                json.dumps({"type": "FeatureCollection", "features": features}))
    if kind == "csv":
        (root / "annotations.csv").write_text("\n".join(rows) + "\n")
    return root


def _generic(root, tmp_path):
    return ["dataset=til", f"dataset.root={root}", f"paths.cache_dir={tmp_path / 'cache'}", "dataset.crop_size=32",
            "dataset.eval_tile=32", "dataset.crops_per_epoch=8", "dataset.point_labels.box_size=8"]


@pytest.mark.parametrize("kind", ["csv", pytest.param("geojson", marks=pytest.mark.slow)])
def test_a_generic_points_dataset_trains_and_evaluates_end_to_end(tmp_path, kind):
    root = write_generic_points(tmp_path / "til", kind)
    run = tmp_path / "run"
    result = run_cli("ece-train", *TINY_DETECTOR, *POINTS, *_generic(root, tmp_path), f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["labels"] == "points" and metrics["task"] == "detection"
    # The test points are not exhaustive (til): point exclusive recall, and no box IoU against nominal boxes.
    assert 0.0 <= metrics["test/point_exclusive_recall"] <= 1.0
    assert not {"test/f1", "test/exclusive_recall", "test/precision"} & set(metrics)
    assert 0.0 <= metrics["val/point_f1"] <= 1.0

    out = tmp_path / "eval"
    result = run_cli("ece-eval", f"checkpoint={run / 'checkpoints' / 'last.ckpt'}", f"output={out}", "split=all",
                     f"paths.cache_dir={tmp_path / 'cache'}")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= evaluated["test/point_exclusive_recall"] <= 1.0 and "test/f1" not in evaluated
    assert evaluated["labels"] == "points"  # ece-report keeps it apart from mask-trained models
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 6 and per_image["true_objects"].sum() == 36  # every point of every image, once
    # Per image, points are matched as point F1 matches them (within the radius), not by IoU of nominal boxes.
    assert (per_image["tp"] + per_image["fn"] == per_image["true_objects"]).all()
    assert per_image["tp"].sum() == round(evaluated["test/point_exclusive_recall"] * 36)
    assert (out / "predictions.png").is_file()


def test_points_of_unknown_cell_size_train_objectness_with_fixed_boxes(tmp_path):
    root = write_generic_points(tmp_path / "til", "csv")
    run = tmp_path / "run"
    result = run_cli("ece-train", *TINY_DETECTOR, *POINTS, *_generic(root, tmp_path), "dataset.point_labels.box_size=null",
                     "task.fixed_box_size=10", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    module = DetectionModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    module.postprocess_cfg["score_threshold"] = 0.0
    detections = module.detect(module(torch.rand(1, 3, 32, 32)), (32, 32))
    sides = detections.boxes[:, 2:] - detections.boxes[:, :2]
    inner = (detections.boxes[:, :2] > 0).all(dim=1) & (detections.boxes[:, 2:] < 32).all(dim=1)
    assert inner.any() and torch.allclose(sides[inner], torch.full_like(sides[inner], 10.0))
    # Slide prediction (ece-predict) draws the same squares.
    from ece_lightning.inference.predictors import load_predictor

    predictor = load_predictor(run / "checkpoints" / "last.ckpt", device="cpu", detection={"score_threshold": 0.0})
    tile_boxes = predictor(np.full((1, 32, 32, 3), 200, np.uint8))[0]
    assert predictor.settings()["fixed_box_size"] == 10.0
    np.testing.assert_allclose(tile_boxes[:, 2] - tile_boxes[:, 0], 10.0, rtol=1e-5)


@pytest.mark.slow  # the datamodule's side is tested in tests/data/test_points.py
def test_a_mask_dataset_trains_from_its_centroids_and_is_scored_on_its_masks(tmp_path):
    run = tmp_path / "run"
    result = run_cli("ece-train", *TINY_DETECTOR, *POINTS, "dataset.image_size=32", "dataset.num_train=4",
                     "dataset.num_val=2", "dataset.num_test=2", "dataset.point_labels={box_size:11}",
                     f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    # Test masks are exhaustive: box F1 (nominal boxes against the true ones) and point F1 on their centres.
    assert {"test/f1", "test/point_f1", "test/count_ratio"} <= set(metrics) and metrics["labels"] == "points"
    assert metrics["objects/train_annotated"] == metrics["objects/train_total"]  # one point per nucleus


@pytest.mark.parametrize("overrides, messages", [
    (["task=detection", "model=yollo"], ["task.metrics.point_radius=0"]),
    (["task=detection", "model=yollo", "dataset.point_labels.box_size=null"],
     ["task.metrics.point_radius=0", "box_size=null (cell size unknown) needs task.fixed_box_size"]),
    (["task=detection", "model=yollo", *POINTS, "dataset.point_labels.box_size=-2"],
     ["dataset.point_labels.box_size=-2 must be a number > 0"]),
    (["task=detection", "model=yollo", *POINTS, "+dataset.point_labels.side=3"], ["point_labels.side: unknown setting"]),
])
def test_point_label_settings_that_cannot_work_are_named(overrides, messages):
    from hydra import compose, initialize_config_dir

    from ece_lightning.config import CONFIG_DIR, ConfigError
    from ece_lightning.runs.assembly import validate_config

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["dataset=crchisto", "dataset.root=.", *overrides])
    with pytest.raises(ConfigError) as error:
        validate_config(cfg)
    for message in messages:
        assert message in str(error.value)


def test_points_are_refused_for_segmentation_before_any_folder_is_made(tmp_path):
    root = native.write_crchisto(tmp_path / "crc", count=5)
    run = tmp_path / "run"
    result = run_cli("ece-train", "dataset=crchisto", f"dataset.root={root}", f"paths.cache_dir={tmp_path / 'cache'}",
                     f"hydra.run.dir={run}")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "point labels train detection only" in result.stderr and "cannot train or evaluate segmentation" in result.stderr
    assert not run.exists()


def test_a_points_only_dataset_without_point_labels_says_how_to_train_it(tmp_path):
    from ece_lightning.data.datamodule import InstanceDataModule
    from ece_lightning.errors import DatasetError

    root = native.write_crchisto(tmp_path / "crc", count=5)
    datamodule = InstanceDataModule(name="crc", source="prepared", format="crchisto", root=str(root),
                                    cache_dir=str(tmp_path / "cache"), split={"method": "random", "test": 1, "val": 1})
    with pytest.raises(DatasetError, match=r"annotated with points only.*dataset.point_labels=\{box_size: <px>\}"):
        datamodule.setup("fit")
