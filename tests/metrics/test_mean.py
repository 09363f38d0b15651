"""WeightedMean: the evaluation loss's batch-size-weighted mean."""

import math

import pytest
import torch

from ece_lightning.metrics import WeightedMean


def test_weighted_mean_weights_and_merges_like_processes():
    mean = WeightedMean()
    mean.update(torch.tensor(1.0), weight=4)
    mean.update(2.0, weight=1)
    assert float(mean.compute()) == pytest.approx(1.2)
    # Two "processes" with 2 and 1 samples merge to the mean over all 3 (states are sums).
    first, second = WeightedMean(), WeightedMean()
    first.update(torch.tensor(0.5), weight=2)
    second.update(torch.tensor(2.0), weight=1)
    first.merge_state(second)
    assert float(first.compute()) == pytest.approx((0.5 * 2 + 2.0) / 3)


def test_weighted_mean_keeps_nan_and_refuses_bad_input():
    mean = WeightedMean()
    mean.update(torch.tensor(float("nan")), weight=2)
    mean.update(1.0, weight=1)
    assert math.isnan(float(mean.compute()))  # a diverged loss is shown, not dropped
    with pytest.raises(ValueError, match="one value per update"):
        mean.update(torch.ones(3), weight=1)
    with pytest.raises(ValueError, match="weight=-1"):
        mean.update(1.0, weight=-1)
