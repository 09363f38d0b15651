"""Object-level error classes on hand-made instance maps, and of a trained run's test images."""

import json

import numpy as np
import pandas as pd
import pytest

from ece_lightning.analysis.diagnosis import (
    TRUE_CLASSES,
    diagnose_run,
    error_picture,
    object_errors,
    probability_histogram,
    probability_summary,
    summarise,
)
from ece_lightning.runs.assembly import load_trained_run
from ece_lightning.runs.evaluation import evaluation_images


def _disc(shape, centre, radius):
    y, x = np.ogrid[: shape[0], : shape[1]]
    return (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius**2


def test_every_kind_of_error_is_named():
    shape = (80, 120)
    target, predicted = np.zeros(shape, np.int32), np.zeros(shape, np.int32)
    centres = {1: (15, 15), 2: (15, 50), 5: (15, 90), 7: (55, 15), 8: (55, 28), 9: (55, 80)}
    for label, centre in centres.items():  # labels with gaps: they are renumbered
        target[_disc(shape, centre, 6)] = label
    predicted[_disc(shape, (15, 15), 6)] = 1                      # 1: found exactly
    predicted[_disc(shape, (15, 50), 2)] = 2                      # 2: too small: poor
    predicted[(target == 5) & (np.arange(120)[None, :] < 90)] = 3  # 5: two halves: split
    predicted[(target == 5) & (np.arange(120)[None, :] >= 90)] = 4
    predicted[(target == 7) | (target == 8)] = 5                   # 7 and 8 together: merged
    predicted[_disc(shape, (70, 110), 4)] = 6                      # nothing there: spurious
    truth, prediction = object_errors(target, predicted)            # 9: missed
    assert truth["class"].tolist() == ["found", "poor", "split", "merged", "merged", "missed"]
    assert truth.loc[0, "best_iou"] == 1.0 and 0 < truth.loc[1, "best_iou"] < 0.5
    assert prediction["class"].tolist() == ["overlapping"] * 5 + ["spurious"]
    assert prediction.loc[4, "true_objects"] == 2
    summary = summarise([truth], [prediction])
    assert summary["true_objects"] == 6 and summary["predicted_objects"] == 6
    assert summary["object_recall"] == 1 / 6 and summary["touched_recall"] == 5 / 6
    assert summary["merged_fraction"] == 2 / 6 and summary["object_precision"] == 5 / 6
    picture = error_picture(np.full(shape + (3,), 128, np.uint8), target, predicted, truth, prediction)
    assert tuple(picture[55, 80]) != (128, 128, 128) and tuple(picture[70, 110]) != (128, 128, 128)
    assert tuple(picture[40, 60]) == (128, 128, 128)  # background untouched


def test_an_empty_prediction_misses_everything():
    target = np.zeros((20, 20), np.int32)
    target[2:6, 2:6], target[10:15, 10:15] = 1, 2
    truth, prediction = object_errors(target, np.zeros_like(target))
    assert truth["class"].tolist() == ["missed", "missed"] and prediction.empty
    summary = summarise([truth], [pd.DataFrame(columns=prediction.columns)])
    assert summary["object_recall"] == 0.0 and summary["missed_median_area"] == 20.5


def test_a_trained_run_is_diagnosed_on_its_test_images(example_sweep):
    """Every true object of every test image gets exactly one class, and the error picture is of a test image."""
    run = next(path.parent for path in sorted(example_sweep.rglob("metrics.json"))
               if json.loads(path.read_text())["loss"] == "ece")
    metrics = json.loads((run / "metrics.json").read_text())
    module, datamodule = load_trained_run(run)
    dataset, image_ids = evaluation_images(datamodule, "test")
    true_objects = sum(int(len(np.unique(dataset[i]["instances"])) - 1) for i in range(len(dataset)))
    result = diagnose_run(run, pictures=1)
    summary = result["summary"]
    assert summary["true_objects"] == len(result["truth"]) == true_objects > 0
    assert sum(summary[f"{kind}_fraction"] for kind in TRUE_CLASSES) == pytest.approx(1.0)
    assert set(result["truth"]["image"]) <= set(image_ids)
    assert summary["test/dice"] == metrics["test/dice"]
    assert summary["count_ratio"] == summary["predicted_objects"] / true_objects
    assert 0 < summary["nucleus_median_probability"] < 1 and 0 <= summary["background_above_half"] <= 1
    (image_id, picture), = result["pictures"]
    assert image_id in image_ids and picture.ndim == 3 and picture.dtype == np.uint8
    other = next(i for i in image_ids if i != image_id)
    assert [i for i, _ in diagnose_run(run, picture_ids=[other])["pictures"]] == [other]  # the same image for all runs


def test_probability_summary_reads_medians_and_shares_from_histograms():
    nucleus = probability_histogram(np.array([0.1, 0.2, 0.22, 0.9]))
    background = probability_histogram(np.array([0.0, 0.0, 0.01, 1.0]))
    summary = probability_summary({"nucleus": nucleus, "background": background})
    assert summary["nucleus_median_probability"] == pytest.approx(0.205)  # the bin [0.20, 0.21)
    assert summary["nucleus_above_half"] == 0.25 and summary["background_above_half"] == 0.25
    assert nucleus.sum() == 4 and background[-1] == 1  # 1.0 falls in the last bin
