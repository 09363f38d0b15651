import numpy as np
import pandas as pd
import pytest

from ece_lightning.analysis.postprocess_search import aji_of, best_setting, candidate_grid, score_settings


def _two_touching_discs(size=48, radius=9):
    yy, xx = np.mgrid[:size, :size]
    target = np.zeros((size, size), dtype=np.int32)
    target[(yy - 24) ** 2 + (xx - 15) ** 2 <= radius ** 2] = 1
    target[(yy - 24) ** 2 + (xx - 32) ** 2 <= radius ** 2] = 2
    return target > 0, target


def test_grid_lists_components_once_per_size():
    grid = candidate_grid(min_distances=(4, 8), min_sizes=(0, 10))
    assert {"method": "components", "min_size": 10, "min_distance": 0} in grid
    assert sum(setting["method"] == "watershed" for setting in grid) == 4 and len(grid) == 6


def test_watershed_splits_touching_nuclei_that_components_merge():
    samples = [_two_touching_discs()]
    merged = aji_of(samples, {"method": "components", "min_size": 0, "min_distance": 0})
    split = aji_of(samples, {"method": "watershed", "min_size": 0, "min_distance": 6})
    assert merged == pytest.approx(0.5, abs=0.02)  # one object over two: each nucleus's IoU is about a half
    assert split > 0.9
    assert aji_of(samples, {"method": "components", "min_size": 10_000, "min_distance": 0}) == 0.0


def test_the_best_setting_is_the_best_mean_over_runs():
    samples = {"a": [_two_touching_discs()], "b": [_two_touching_discs(radius=8)]}
    grid = [{"method": "components", "min_size": 0, "min_distance": 0},
            {"method": "watershed", "min_size": 0, "min_distance": 6}]
    scores = score_settings(samples, grid)
    assert isinstance(scores, pd.DataFrame) and len(scores) == 4 and set(scores["run"]) == {"a", "b"}
    assert best_setting(scores) == grid[1]
