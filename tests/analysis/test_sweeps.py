"""Sweep tables and curves as a notebook user meets them."""

import pandas as pd
import pytest

from ece_lightning.analysis.sweeps import (
    load_sweep,
    load_wandb,
    paper_table,
    plot_curves,
    table_latex,
    table_markdown,
)


def _frame():
    rows = []
    for loss, base in (("ce", 0.5), ("ece", 0.7)):
        for sparsity in (0.3, 1.0):
            for seed, noise in ((0, -0.1), (1, 0.1)):
                rows.append({"dataset": "synthetic", "task": "segmentation", "model": "unet", "loss": loss,
                             "sparsity": sparsity, "seed": seed, "test/dice": base + sparsity / 10 + noise})
    rows.append({"dataset": "synthetic", "task": "segmentation", "model": "unet", "loss": "focal",
                 "sparsity": 1.0, "seed": 0, "test/dice": 0.4})
    return pd.DataFrame(rows)


def test_paper_table_has_mean_std_and_count_per_cell():
    table = paper_table(_frame(), "test/dice")
    assert list(table.columns) == [0.3, 1.0]
    mean, std, count = table.loc[("synthetic", "ece"), 0.3]
    assert mean == pytest.approx(0.73) and std == pytest.approx(0.1414, abs=1e-4) and count == 2
    assert pd.isna(table.loc[("synthetic", "focal"), 0.3])
    with pytest.raises(KeyError, match="available: test/dice"):
        paper_table(_frame(), "test/f1")


def test_markdown_and_latex_tables():
    table = paper_table(_frame(), "test/dice")
    markdown = table_markdown(table, "test/dice")
    assert "| dataset | loss | dice @ 0.3 | dice @ 1 |" in markdown
    assert "| synthetic | ece | 0.730 ± 0.141 | 0.800 ± 0.141 |" in markdown
    assert "| synthetic | focal | - | 0.400 |" in markdown  # one seed: no std
    latex = table_latex(table, "test/dice", caption="Dice")
    assert r"\textbf{0.730 $\pm$ 0.141}" in latex and r"\toprule" in latex and r"\caption{Dice}" in latex
    assert latex.count(r"\\") == 4  # header + three rows


def test_curves_have_one_panel_per_metric_and_a_line_per_loss():
    figure = plot_curves(_frame())
    (ax,) = figure.axes
    assert ax.get_ylabel() == "dice" and len(ax.get_legend().get_texts()) == 3
    with pytest.raises(ValueError, match="no test metric"):
        plot_curves(_frame().drop(columns="test/dice"))


def test_load_sweep_reads_every_run_of_a_real_sweep(example_sweep):
    frame = load_sweep(example_sweep)
    assert len(frame) == 4 and set(frame["loss"]) == {"ce", "ece"} and set(frame["sparsity"]) == {0.5, 1.0}
    assert frame["test/dice"].between(0, 1).all()
    assert (example_sweep / frame.iloc[0]["run_dir"] / "metrics.json").is_file()


def test_load_sweep_names_a_folder_without_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        load_sweep(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_sweep(tmp_path / "missing")


class _Run:
    def __init__(self, name, loss, sparsity, dice):
        self.name = name
        self.config = {"dataset": {"name": "cpm15"}, "task": {"name": "segmentation"}, "model": {"name": "unet"},
                       "loss": {"name": loss}, "sparsity": sparsity, "seed": 0}
        self.summary = {"test/dice": dice, "train/loss": 0.3, "_step": 10}


class _Api:
    def runs(self, path):
        assert path == "me/ece"
        elr = _Run("c", "elr", 0.3, 0.2)
        elr.config["loss_entry"] = "elr_asym"
        return [_Run("b", "ece", 0.3, 0.6), _Run("a", "ce", 0.3, 0.1), elr]


def test_wandb_runs_become_the_same_table():
    frame = load_wandb("me/ece", api=_Api())
    assert frame["loss"].tolist() == ["ce", "ece", "elr_asym"] and set(frame["dataset"]) == {"cpm15"}
    assert frame["test/dice"].tolist() == [0.1, 0.6, 0.2] and "train/loss" not in frame.columns


def test_values_cell_is_the_paper_tables_cell_of_raw_values():
    from ece_lightning.analysis.sweeps import values_cell

    assert values_cell([0.5, 0.7]) == "0.600 ± 0.141"  # the sample std (ddof 1), as the paper tables
    assert values_cell([0.5]) == "0.500" and values_cell([]) == "-"
