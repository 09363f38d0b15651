import numpy as np
import pandas as pd
import pytest

from ece_lightning.analysis.postprocess_search import (
    aji_of,
    best_setting,
    candidate_grid,
    score_settings,
    scores_of,
)


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


def test_thresholds_multiply_the_grid_and_are_checked():
    grid = candidate_grid(min_distances=(4, 8), min_sizes=(0,), thresholds=(0.4, 0.6))
    assert len(grid) == 2 * 3 and {"threshold": 0.6, "method": "components", "min_size": 0, "min_distance": 0} in grid
    with pytest.raises(ValueError, match="threshold 1.0 must lie in"):
        candidate_grid(thresholds=(1.0,))


def test_a_threshold_on_margins_shrinks_the_foreground():
    """A blurred disc: the margin falls from the centre outwards, so a higher threshold keeps a smaller disc."""
    yy, xx = np.mgrid[:40, :40]
    radius = np.hypot(yy - 20, xx - 20)
    target = (radius <= 10).astype(np.int32)
    margin = (12.0 - radius).astype(np.float32)  # probability 0.5 at radius 12: over-segmented at 0.5
    samples = [(margin, target)]
    setting = {"method": "components", "min_size": 0, "min_distance": 0}
    at_half = scores_of(samples, setting)
    tight = scores_of(samples, {"threshold": 0.88, **setting})  # logit(0.88) ~ 2: radius 10
    assert at_half["aji"] < tight["aji"] and at_half["dice"] < tight["dice"]
    assert tight["dice"] > 0.97 and aji_of(samples, {"threshold": 0.88, **setting}) == tight["aji"]
    # a boolean foreground is already decided: only the default threshold applies to it
    assert aji_of([(margin > 0, target)], setting) == at_half["aji"]
    with pytest.raises(ValueError, match="needs foreground margins"):
        aji_of([(margin > 0, target)], {"threshold": 0.7, **setting})


def test_foreground_samples_follow_the_modules_test_time_augmentation():
    """The search scores the margins the module's evaluation would see: with ``postprocess.tta`` those of the
    averaged copies."""
    import torch

    from ece_lightning.analysis.postprocess_search import foreground_samples
    from ece_lightning.inference.tta import average_over_transforms
    from ece_lightning.modules.segmentation import SegmentationModule
    from ece_lightning.postprocess.segmentation import foreground_margin

    torch.manual_seed(0)
    module = SegmentationModule(model={"name": "unet", "base_channels": 2, "depth": 1}, loss={"name": "ce"},
                                postprocess={"tta": "flips"}).eval()
    _, target = _two_touching_discs(size=16, radius=3)
    dataset = [{"image": torch.rand(3, 16, 16), "instances": torch.from_numpy(target)}]
    (margin, instances), = foreground_samples(module, dataset)
    with torch.no_grad():
        expected = foreground_margin(average_over_transforms(module, dataset[0]["image"][None], "flips"))[0]
        plain = foreground_margin(module(dataset[0]["image"][None]))[0]
    np.testing.assert_allclose(margin, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(margin - plain.numpy()).max() > 1e-4 and (instances == target).all()
