import numpy as np
import pytest
import torch

from ece_lightning.data.synthetic import generate_split
from ece_lightning.metrics import AggregatedJaccardIndex, DiceScore, ForegroundRatio, aji_counts, dice_counts
from ece_lightning.metrics.core import aji_from_counts, dice_from_counts


@pytest.fixture(scope="module")
def maps():
    _, target = generate_split(0, 0, 6)
    pred = np.roll(target, 2, axis=2)
    pred[0] = 0  # one empty prediction
    return torch.from_numpy(target), torch.from_numpy(pred)


def test_image_average_is_the_mean_of_per_image_scores(maps):
    target, pred = maps
    metric = AggregatedJaccardIndex()
    metric.update(pred[:3], target[:3])
    metric.update(pred[3:], target[3:])
    expected = np.mean([aji_from_counts(*aji_counts(t.numpy(), p.numpy())) for t, p in zip(target, pred)])
    assert metric.compute().item() == pytest.approx(expected, abs=1e-6)


def test_pooled_average_is_the_ratio_of_summed_counts(maps):
    target, pred = maps
    metric = DiceScore(average="pooled")
    for t, p in zip(target, pred):
        metric.update(p > 0, t > 0)  # (H, W) inputs are one image each
    counts = np.sum([dice_counts(t.numpy(), p.numpy()) for t, p in zip(target, pred)], axis=0)
    assert metric.compute().item() == pytest.approx(dice_from_counts(*counts), abs=1e-6)
    assert int(metric.images) == len(target)


def test_foreground_ratio():
    metric = ForegroundRatio()
    target = torch.zeros(1, 4, 4, dtype=torch.bool)
    target[0, :2] = True
    metric.update(torch.ones_like(target), target)
    assert metric.compute().item() == 2.0


def test_unknown_average_is_named():
    with pytest.raises(ValueError, match="average='micro'"):
        DiceScore(average="micro")
