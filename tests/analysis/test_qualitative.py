"""CE-vs-ECE prediction pictures from finished runs."""

import numpy as np
import pytest

from ece_lightning.analysis.qualitative import (
    FN_COLOUR,
    FP_COLOUR,
    TP_COLOUR,
    compare_runs,
    error_overlay,
    load_run,
    pick_runs,
)
from ece_lightning.analysis.sweeps import load_sweep


def test_error_overlay_colours_tp_fp_fn_and_leaves_the_rest():
    image = np.zeros((1, 4, 3), np.uint8)
    out = error_overlay(image, np.array([[1, 1, 0, 0]]), np.array([[1, 0, 1, 0]]), alpha=1.0)
    assert out[0].tolist() == [list(TP_COLOUR), list(FN_COLOUR), list(FP_COLOUR), [0, 0, 0]]
    with pytest.raises(ValueError, match="differ"):
        error_overlay(image, np.zeros((2, 2)), np.zeros((2, 2)))


def test_compare_runs_of_a_real_sweep(example_sweep):
    runs = pick_runs(load_sweep(example_sweep), example_sweep, sparsity=0.5)
    assert list(runs) == ["ce @ 0.5", "ece @ 0.5"]
    module, datamodule = load_run(runs["ece @ 0.5"])
    assert not module.training and type(module).__name__ == "SegmentationModule"
    figure = compare_runs(runs, max_images=2)
    assert len(figure.axes) == 6
    assert figure.axes[0].get_title() == "test tile 0 + label outlines"
    assert figure.axes[3].get_title() == "test tile 2 + label outlines"  # spread over the 3 tiles
    assert figure.axes[1].get_title().startswith("ce @ 0.5: Dice ")
    with pytest.raises(IndexError, match="test tile index 7 out of range: the test set has 3 tiles"):
        compare_runs(runs, indices=[7])


def test_spread_indices():
    from ece_lightning.analysis.qualitative import spread_indices

    assert spread_indices(9, 3) == [0, 4, 8] and spread_indices(2, 5) == [0, 1] and spread_indices(0, 3) == []


def test_missing_runs_are_named(example_sweep, tmp_path):
    with pytest.raises(KeyError, match="no run of loss 'focal' at sparsity 0.5"):
        pick_runs(load_sweep(example_sweep), example_sweep, sparsity=0.5, losses=("focal",))
    with pytest.raises(FileNotFoundError, match="not a finished ece-train run folder"):
        load_run(tmp_path)
