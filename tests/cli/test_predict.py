"""`ece-predict` as a user runs it: a checkpoint of a real ece-train run on a TIFF, and bad input."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from ece_lightning.data.synthetic import SyntheticConfig, generate_tile
from ece_lightning.inference.predictors import load_predictor
from ece_lightning.postprocess.segmentation import foreground_to_instances

from .helpers import run_cli

# 30 epochs: at 20, seeds 1 and 2 still predicted nothing (a fixture that trains or not by the machine's rounding).
# min_size=10 as in the real-data recipes: specks of a few pixels near the 0.5 boundary are what tiling changes
# (seed 0 at 20 epochs: 91 objects under 10 px tiled against 45 in one pass, 427 against 420 above).
TRAIN = ["trainer.max_epochs=30", "task.postprocess.min_size=10", "model.base_channels=8", "model.depth=3", "dataset.image_size=96",
         "dataset.num_train=64", "dataset.num_val=2", "dataset.num_test=2", "dataset.batch_size=8",
         "optimizer.lr=3e-3", "logger=none"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small U-Net trained by ece-train on synthetic tiles (about 30 s), and a 768 x 768 synthetic TIFF it has not seen."""
    root = tmp_path_factory.mktemp("predict")
    result = run_cli("ece-train", *TRAIN, f"hydra.run.dir={root / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    image, instances = generate_tile(seed=99, index=0, cfg=SyntheticConfig(image_size=768))
    tifffile.imwrite(root / "image.tif", image, tile=(256, 256), compression="zlib", photometric="rgb")
    return root / "run" / "checkpoints" / "last.ckpt", root / "image.tif", image, instances


def test_trained_model_on_a_tiff(trained, tmp_path):
    checkpoint, image_path, image, instances = trained
    out = tmp_path / "pred"
    result = run_cli("ece-predict", f"checkpoint={checkpoint}", f"input={image_path}", f"output={out}", "tile=128",
                     "overlap=32", "geojson.gzip=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ece-predict" in result.stderr and "tile/s" in result.stderr  # the progress bar
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "segmentation" and summary["tiles"] == 64  # 768 / (128 - 32) = 8 per side
    assert sorted(summary["outputs"]) == ["objects.geojson.gz", "objects.parquet", "probability.tif", "summary.json"]
    objects = pd.read_parquet(out / "objects.parquet")
    assert len(objects) == summary["objects"] > 0
    # Tiling changes (nearly) nothing: the objects of one pass over the whole image, with the same model.
    predictor = load_predictor(checkpoint, device="cpu")
    whole = predictor(image[None])[0] >= 0.5
    single = foreground_to_instances(whole, **predictor.postprocess).max()
    assert abs(len(objects) - single) <= max(2, 0.02 * single)
    probability = tifffile.imread(out / "probability.tif")
    assert probability.shape == image.shape[:2] and probability.dtype == np.uint8
    tiled = probability >= 128
    assert 2 * (tiled & whole).sum() / (tiled.sum() + whole.sum()) >= 0.98  # seeds 0-3: 0.991-0.997
    # ... and a trained model finds the nuclei: components merge touching ones (seeds 0-3: 0.63-0.68 of the 627).
    assert 0.5 * instances.max() <= len(objects) <= 1.4 * instances.max()
    # Started again: the finished folder is reported, not redone.
    again = run_cli("ece-predict", f"checkpoint={checkpoint}", f"input={image_path}", f"output={out}", "tile=128",
                    "overlap=32", "geojson.gzip=true")
    assert again.returncode == 0 and "already holds this prediction" in again.stdout


def test_the_runs_foreground_threshold_serves_prediction(trained, tmp_path):
    """A run trained with task.postprocess.threshold predicts with it unless segmentation.threshold is given."""
    import torch

    checkpoint = torch.load(trained[0], map_location="cpu", weights_only=False)
    checkpoint["hyper_parameters"]["postprocess"] = {**checkpoint["hyper_parameters"].get("postprocess", {}),
                                                     "threshold": 0.8}
    torch.save(checkpoint, tmp_path / "strict.ckpt")
    assert load_predictor(trained[0], device="cpu").threshold == 0.5
    predictor = load_predictor(tmp_path / "strict.ckpt", device="cpu")
    assert predictor.threshold == 0.8 and "threshold" not in predictor.postprocess
    assert load_predictor(tmp_path / "strict.ckpt", device="cpu", segmentation={"threshold": 0.3}).threshold == 0.3


def test_test_time_augmentation_in_prediction(trained, tmp_path):
    """``segmentation.postprocess.tta=flips``: each tile's probability is the mean over its four flipped copies (the
    same as the plain predictor on flipped tiles, mapped back), and a prediction with it runs end to end."""
    checkpoint, image_path, image, _ = trained
    plain = load_predictor(checkpoint, device="cpu")
    averaged = load_predictor(checkpoint, device="cpu", segmentation={"postprocess": {"tta": "flips"}})
    assert averaged.postprocess["tta"] == "flips" and "tta" not in plain.postprocess
    tile = image[None, :128, :128]
    by_hand = np.mean([plain(np.ascontiguousarray(tile[:, ::dy, ::dx]))[:, ::dy, ::dx].astype(np.float32)
                       for dy in (1, -1) for dx in (1, -1)], axis=0)
    np.testing.assert_allclose(averaged(tile).astype(np.float32), by_hand, atol=2e-3)  # float16 maps
    out = tmp_path / "pred"
    result = run_cli("ece-predict", f"checkpoint={checkpoint}", f"input={image_path}", f"output={out}", "tile=256",
                     "+segmentation.postprocess.tta=flips")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objects"] > 0 and "flips" in json.dumps(summary)


@pytest.mark.parametrize("args,message", [
    (["checkpoint=missing.ckpt"], "checkpoint=missing.ckpt: no such file"),
    (["input=nowhere.svs"], "nowhere.svs: no such file"),
    (["tile=100"], "tile=100 must be a positive multiple of 8"),
    (["precision=fp8"], "precision='fp8' is not one of 32, bf16"),
    (["geojson.geometry=circle"], "geojson.geometry='circle' is not one of point, polygon, box"),
    (["+segmentation.postprocess.method=blobs"],
     "segmentation.postprocess.method='blobs' is not registered; valid: components, watershed"),
    (["+segmentation.postprocess.tta=rot45"], "segmentation.postprocess.tta='rot45' is not one of none, flips, dihedral"),
    (["+geojson.shape=point"], "unknown key(s) geojson.shape; valid: enabled, gzip, geometry, class_name, colour"),
])
def test_bad_input_is_named(trained, tmp_path, args, message):
    checkpoint, image_path, _, _ = trained
    given = {"checkpoint": f"checkpoint={checkpoint}", "input": f"input={image_path}", "output": f"output={tmp_path / 'o'}"}
    for arg in args:
        given[arg.split("=")[0]] = arg
    result = run_cli("ece-predict", *given.values())
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert message in result.stderr
    assert not list((tmp_path / "o").glob("objects*"))


def test_missing_arguments_say_what_is_needed():
    result = run_cli("ece-predict")
    assert result.returncode == 2 and "checkpoint= is required" in result.stderr
