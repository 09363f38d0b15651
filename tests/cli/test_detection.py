"""`ece-train task=detection model=yollo` as a user runs it."""

import csv
import json

import pandas as pd
import pytest
import torch
from PIL import Image

from ece_lightning.modules import DetectionModule

from .helpers import TINY, run_cli

DETECTION = ["task=detection", "model=yollo", *TINY]


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("detection")
    result = run_cli("ece-train", *DETECTION, "loss=ece", "sparsity=0.5", "trainer.max_epochs=2",
                     f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_detection_run_reports_f1_precision_recall(detection_run):
    metrics = json.loads((detection_run / "metrics.json").read_text())
    assert metrics["task"] == "detection" and metrics["model"] == "yollo" and metrics["loss"] == "ece"
    for key in ("test/f1", "test/precision", "test/recall", "val/f1"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert "test/exclusive_recall" not in metrics  # the synthetic test set is exhaustive
    assert "test/dice" not in metrics
    assert not (detection_run / "test_recall_vs_count.png").exists()  # exhaustive test labels: F1 says it all


def test_detection_run_logs_the_ece_schedule_and_loss_parts(detection_run):
    with open(detection_run / "csv" / "metrics.csv") as handle:
        columns = set(next(csv.reader(handle)))
    assert {"ece/exclusion_threshold", "ece/negative_rate", "train/loss_objectness", "train/loss_box",
            "val/f1"} <= columns


def test_detection_run_draws_its_test_predictions_and_restores_from_its_checkpoint(detection_run):
    picture = Image.open(detection_run / "test_predictions.png")
    assert picture.size == (2 * 32 + 4, 32)  # the 2 test tiles side by side
    module = DetectionModule.load_from_checkpoint(detection_run / "checkpoints" / "last.ckpt")
    assert module(torch.rand(1, 3, 32, 32)).shape == (1, 5, 8, 8)  # yollo depth 2: stride 4


def test_a_test_set_that_is_not_exhaustive_reports_only_exclusive_recall(tmp_path):
    out = tmp_path / "run"
    result = run_cli("ece-train", *DETECTION, "dataset.exhaustive_test=false", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test/exclusive_recall"] <= 1.0 and metrics["exhaustive_test"] is False
    assert not {"test/f1", "test/precision", "test/recall"} & set(metrics)
    # exclusive recall alone rewards predicting everywhere: the count ratio and its curve over thresholds go beside
    assert metrics["test/count_ratio"] >= 0.0
    curve = pd.read_csv(out / "test_recall_vs_count.csv")
    assert len(curve) == 19 and curve["predicted"].is_monotonic_decreasing
    at_run_threshold = curve[curve["threshold"].round(2) == 0.5].iloc[0]
    assert at_run_threshold["count_ratio"] == pytest.approx(metrics["test/count_ratio"])
    assert at_run_threshold["exclusive_recall"] == pytest.approx(metrics["test/exclusive_recall"])
    assert Image.open(out / "test_recall_vs_count.png").size[0] > 300


def test_a_segmentation_model_for_detection_is_refused_with_the_fix(tmp_path):
    out = tmp_path / "run"
    result = run_cli("ece-train", "task=detection", *TINY, f"hydra.run.dir={out}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is a segmentation model but task.name='detection'; use model=yollo" in result.stderr
    assert not out.exists()


def test_real_cpm15_detection_end_to_end(tmp_path, cpm15_dir):
    out = tmp_path / "cpm15"
    result = run_cli("ece-train", "experiment=cpm15_detection", "loss=ce", "sparsity=0.3", "trainer.max_epochs=1",
                     "model.base_channels=4", "dataset.crops_per_epoch=4", "hydra.mode=RUN",
                     f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "cpm15" and metrics["task"] == "detection"
    assert metrics["objects/train_total"] + metrics["objects/val_total"] + metrics["objects/test_total"] == 2905
    assert 0.0 <= metrics["test/f1"] <= 1.0 and (out / "test_predictions.png").is_file()


@pytest.mark.parametrize("loss", ["focal", "elr_cifar10"])
def test_baseline_objectness_losses_train_a_detector(tmp_path, loss):
    out = tmp_path / loss
    result = run_cli("ece-train", *DETECTION, f"loss={loss}", "sparsity=0.5", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["loss"] == loss and 0.0 <= metrics["test/f1"] <= 1.0
