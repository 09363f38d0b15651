"""The main job end to end (slow: `make test-full`): the sparse-shot problem shows in its table."""

import json

import pytest

from .cli.helpers import run_cli


def _sweep(sweep, experiment: str, metric: str) -> dict:
    """Run ``experiment`` as a sweep into ``sweep``; ``metric`` of each run by (loss, sparsity)."""
    result = run_cli("ece-train", "-m", f"experiment={experiment}", f"hydra.sweep.dir={sweep}", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [json.loads(path.read_text()) for path in sweep.rglob("metrics.json")]
    return {(metrics["loss"], metrics["sparsity"]): metrics[metric] for metrics in runs}


@pytest.fixture(scope="module")
def demo_dice(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("demo")
    dice = _sweep(sweep, "demo", "test/dice")
    report = run_cli("ece-report", str(sweep))
    assert report.returncode == 0 and "| ce | 0.300 |" in report.stdout and "| ece | 1.000 |" in report.stdout
    return dice


@pytest.mark.slow
def test_demo_sweep_shows_the_sparse_shot_problem(demo_dice):
    assert demo_dice[("ce", 1.0)] > 0.6  # measured 0.688 (seed 0); 0.882 and 0.855 with seeds 1 and 2
    assert demo_dice[("ce", 0.3)] < demo_dice[("ce", 1.0)] - 0.2
    assert demo_dice[("ece", 0.3)] >= demo_dice[("ce", 0.3)] + 0.2  # ECE recovers what sparse labels cost CE


@pytest.mark.slow
def test_demo_meets_the_ece_targets_of_issue_3(demo_dice):
    """Met by seeds 0, 1 and 2 of the 24-epoch demo (README); the 12-epoch demo missed them with 2 of 3."""
    assert demo_dice[("ece", 0.3)] >= 0.9 * demo_dice[("ce", 1.0)]
    assert demo_dice[("ece", 1.0)] >= demo_dice[("ce", 1.0)] - 0.02


@pytest.fixture(scope="module")
def demo_f1(tmp_path_factory):
    return _sweep(tmp_path_factory.mktemp("demo_detection"), "demo_detection", "test/f1")


@pytest.mark.slow
def test_demo_detection_meets_the_targets_of_issue_6(demo_f1):
    assert demo_f1[("ce", 1.0)] > 0.7
    assert demo_f1[("ece", 0.3)] >= demo_f1[("ce", 0.3)] + 0.15
    assert demo_f1[("ece", 0.3)] >= 0.9 * demo_f1[("ce", 1.0)]
