"""The main job end to end (slow: `make test-full`): the sparse-shot problem shows in its table."""

import json

import pytest

from .cli.helpers import run_cli


@pytest.mark.slow
def test_demo_sweep_shows_the_sparse_shot_problem(tmp_path):
    result = run_cli("ece-train", "-m", "experiment=demo", f"hydra.sweep.dir={tmp_path}", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    dice = {}
    for path in tmp_path.rglob("metrics.json"):
        metrics = json.loads(path.read_text())
        dice[(metrics["loss"], metrics["sparsity"])] = metrics["test/dice"]
    assert dice[("ce", 1.0)] > 0.75
    assert dice[("ce", 0.3)] < dice[("ce", 1.0)] - 0.2
    # ECE delivers the paper's claim on the demo (issue: ECE).
    assert dice[("ece", 0.3)] >= dice[("ce", 0.3)] + 0.2
    assert dice[("ece", 0.3)] >= 0.9 * dice[("ce", 1.0)]
    assert dice[("ece", 1.0)] >= dice[("ce", 1.0)] - 0.02
    report = run_cli("ece-report", str(tmp_path))
    assert report.returncode == 0 and "| ce | 0.300 |" in report.stdout and "| ece | 1.000 |" in report.stdout
