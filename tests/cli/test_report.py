import json

import pandas as pd

from ece_lightning.cli.report import main

from .helpers import run_cli


def _write(root, name, loss, sparsity, seed, dice):
    run = root / name
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({
        "dataset": "synthetic", "task": "segmentation", "model": "unet", "loss": loss, "sparsity": sparsity,
        "seed": seed, "epochs": 2, "wall_s": 1.5, "test/dice": dice, "test/aji": dice / 2,
    }))


def test_report_aggregates_every_run(tmp_path, capsys):
    _write(tmp_path, "b", "ce", 1.0, 0, 0.9)
    _write(tmp_path, "a", "ce", 0.3, 0, 0.2)
    _write(tmp_path, "c/nested", "ce", 0.3, 1, 0.4)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{not json")
    assert main([str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "broken/metrics.json: unreadable" in captured.err
    frame = pd.read_csv(tmp_path / "results.csv")
    assert frame[["sparsity", "seed", "test/dice"]].values.tolist() == [[0.3, 0, 0.2], [0.3, 1, 0.4], [1.0, 0, 0.9]]
    markdown = (tmp_path / "results.md").read_text().splitlines()
    assert markdown[0].startswith("| dataset | task | model | loss | sparsity | seed | dice | aji |")
    assert len(markdown) == 2 + 3
    assert "| synthetic | segmentation | unet | ce | 1.000 | 0 | 0.900 | 0.450 |" in captured.out
    assert (tmp_path / "dice_vs_sparsity.png").stat().st_size > 1000
    # paper-style tables: rows dataset x loss, columns sparsity, mean +- std over the two seeds at 0.3
    assert "| synthetic | ce | 0.300 ± 0.141 | 0.900 |" in (tmp_path / "table_segmentation_dice.md").read_text()
    latex = (tmp_path / "table_segmentation_aji.tex").read_text()
    assert r"\textbf{0.150 $\pm$ 0.071}" in latex and r"\begin{tabular}{llcc}" in latex
    assert not (tmp_path / "table_detection_f1.md").exists()


def test_evaluations_of_other_splits_or_datasets_get_rows_of_their_own(tmp_path, capsys):
    """``ece-eval`` writes ``test/*`` keys for any split: a validation evaluation kept inside a run folder must not
    count as one more test seed of that run, nor a cross-dataset one as a model trained there."""
    _write(tmp_path, "run", "ce", 1.0, 0, 0.8)
    _write(tmp_path, "run2", "ce", 1.0, 1, 0.6)
    evaluation = {"dataset": "synthetic", "task": "segmentation", "model": "unet", "loss": "ce", "sparsity": 1.0,
                  "seed": 0, "checkpoint": "run/checkpoints/last.ckpt", "trained_on": "synthetic", "test/aji": 0.1}
    for name, split, dataset, dice in [("run/val", "val", "synthetic", 0.5), ("run/test", "test", "synthetic", 0.8),
                                       ("run/cpm", "test", "cpm15", 0.3)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({**evaluation, "split": split, "dataset": dataset,
                                                                  "test/dice": dice}))
    assert main([str(tmp_path)]) == 0
    capsys.readouterr()
    frame = pd.read_csv(tmp_path / "results.csv")
    assert sorted(frame["loss"]) == ["ce", "ce", "ce", "ce (trained on synthetic)", "ce (val)"]
    table = (tmp_path / "table_segmentation_dice.md").read_text()
    assert "| synthetic | ce (val) | 0.500 |" in table and "| cpm15 | ce (trained on synthetic) | 0.300 |" in table
    # the run's own test split evaluated again is the same model: it stays in the run's row (here a third value)
    assert "| synthetic | ce | 0.733 ± 0.115 |" in table


def test_report_of_an_empty_directory_fails_clearly(tmp_path):
    result = run_cli("ece-report", str(tmp_path))
    assert result.returncode == 2
    assert "no metrics.json found" in result.stderr
    assert not (tmp_path / "results.csv").exists()


def test_report_of_segmentation_and_detection_runs_has_both_metric_families(tmp_path, capsys):
    _write(tmp_path, "segmentation/a", "ce", 0.3, 0, 0.2)
    run = tmp_path / "detection" / "b"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({
        "dataset": "synthetic", "task": "detection", "model": "yollo", "loss": "ece", "sparsity": 0.3, "seed": 0,
        "epochs": 2, "wall_s": 1.0, "test/f1": 0.7, "test/precision": 0.8, "test/recall": 0.6,
    }))
    assert main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| dataset | task | model | loss | sparsity | seed | dice | aji | f1 | precision | recall | epochs | wall_s |"
    assert "| synthetic | detection | yollo | ece | 0.300 | 0 |  |  | 0.700 | 0.800 | 0.600 | 2 | 1.000 |" in lines
    assert (tmp_path / "dice_vs_sparsity.png").is_file() and (tmp_path / "f1_vs_sparsity.png").is_file()
    assert "| synthetic | ece | 0.800 |" in (tmp_path / "table_detection_precision.md").read_text()
    assert "| synthetic | ece | 0.700 (P 0.80, R 0.60; n=1) |" in (tmp_path / "table_detection_summary.md").read_text()
    assert not (tmp_path / "table_detection_point_summary.md").exists()  # no run has point F1


def test_detection_summary_puts_precision_recall_and_count_beside_f1_over_seeds(tmp_path):
    for seed, (f1, precision, recall, count) in enumerate(((0.5, 0.6, 0.4, 0.7), (0.7, 0.8, 0.6, 0.8))):
        run = tmp_path / f"det{seed}"
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({
            "dataset": "cpm15", "task": "detection", "model": "yollo", "loss": "ece", "sparsity": 0.3, "seed": seed,
            "epochs": 2, "wall_s": 1.0, "test/f1": f1, "test/precision": precision, "test/recall": recall,
            "test/count_ratio": count, "test/point_f1": f1 + 0.1, "test/point_precision": precision,
            "test/point_recall": recall}))
    assert main([str(tmp_path)]) == 0
    summary = (tmp_path / "table_detection_summary.md").read_text().splitlines()
    assert summary[0] == "| dataset | loss | F1 (P, R, count) @ 0.3 |"
    assert summary[2] == "| cpm15 | ece | 0.600 ± 0.141 (P 0.70, R 0.50, count 0.75; n=2) |"
    points = (tmp_path / "table_detection_point_summary.md").read_text()
    assert "| cpm15 | ece | 0.700 ± 0.141 (P 0.70, R 0.50, count 0.75; n=2) |" in points
    assert "| cpm15 | ece | 0.500 ± 0.141 |" in (tmp_path / "table_detection_recall.md").read_text()
    assert (tmp_path / "point_f1_vs_sparsity.png").stat().st_size > 1000


def test_paper_rows_stand_beside_ours_where_the_paper_has_them(tmp_path):
    for seed, dice in ((0, 0.70), (1, 0.74)):
        run = tmp_path / f"ece{seed}"
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({
            "dataset": "cpm15", "task": "segmentation", "model": "unet", "loss": "ece", "sparsity": 0.3,
            "seed": seed, "epochs": 2, "wall_s": 1.0, "test/dice": dice, "test/aji": dice / 2}))
    assert main([str(tmp_path)]) == 0
    table = (tmp_path / "table_segmentation_dice.md").read_text().splitlines()
    assert "| cpm15 | ece | 0.720 ± 0.028 |" in table and "| cpm15 | ece (paper) | 0.790 |" in table
    latex = (tmp_path / "table_segmentation_aji.tex").read_text()
    assert r"\textbf{0.360 $\pm$ 0.014}" in latex and "0.550" in latex  # the paper's row is not bolded over ours
