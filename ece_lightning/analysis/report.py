"""A sweep's report files: every metrics.json under a folder gathered into results.csv, results.md, paper-style
tables (``table_<task>_<metric>.md`` / ``.tex``: rows dataset x loss, columns sparsity, mean +- std over seeds)
and metric-vs-sparsity plots."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from ..io import atomic_save_figure, atomic_write_text
from .paper import with_paper_rows
from .sweeps import (
    SHORT_NAMES,
    TABLE_METRICS,
    collect,
    detection_summary_markdown,
    draw_metric_vs_sparsity,
    paper_table,
    summary_table,
    table_latex,
    table_markdown,
    to_markdown,
)


def plot_metric_vs_sparsity(frame: pd.DataFrame, metric: str, path: Path) -> Path | None:
    """Test ``metric`` against sparsity, one line per (dataset, task, loss); seeds give error bars."""
    if metric not in frame.columns or frame[metric].isna().all():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    draw_metric_vs_sparsity(ax, frame, metric, by=("dataset", "task", "loss"))
    ax.set_title(f"test {SHORT_NAMES.get(metric, metric)} against the fraction of annotated objects")
    fig.tight_layout()
    atomic_save_figure(path, fig, dpi=120)
    plt.close(fig)
    return path


def write_paper_tables(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``table_<task>_<metric>.md`` and ``.tex`` for each task's table metrics (Dice, AJI; F1, precision, recall,
    their point versions), and for detection ``table_detection_summary.md`` (and ``_point_summary``): F1 with
    precision, recall and count ratio in each cell."""
    written = []
    detection = frame[frame["task"] == "detection"]
    for prefix in ("", "point_"):
        summary = detection_summary_markdown(detection, prefix) if not detection.empty else None
        if summary:
            written.append(atomic_write_text(out_dir / f"table_detection_{prefix}summary.md", summary))
    for task, metrics in TABLE_METRICS.items():
        runs = frame[frame["task"] == task]
        for metric in metrics:
            if runs.empty or metric not in runs.columns or runs[metric].isna().all():
                continue
            table = with_paper_rows(paper_table(runs, metric), metric)
            stem = f"table_{task}_{SHORT_NAMES[metric]}"
            caption = (f"{task}: test {SHORT_NAMES[metric]} (mean $\\pm$ std over seeds) against the fraction of "
                       "annotated objects")
            written += [atomic_write_text(out_dir / f"{stem}.md", table_markdown(table, metric)),
                        atomic_write_text(out_dir / f"{stem}.tex", table_latex(table, metric, caption=caption))]
    return written


def report(root: Path, out_dir: Path | None = None) -> tuple[pd.DataFrame, list[Path]]:
    """Write results.csv, results.md, the Dice-, F1- and point-F1-vs-sparsity plots (for the metrics present) and
    the paper tables for the runs under ``root``; returns the summary table and the files written. Unreadable runs are
    reported on stderr and left out; a folder without any run is a FileNotFoundError."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory (give a run or sweep output directory)")
    frame, problems = collect(root)
    for problem in problems:
        print(f"ece-report: warning: {problem}", file=sys.stderr)
    if frame.empty:
        raise FileNotFoundError(f"{root}: no metrics.json found under it (did the runs finish?)")
    out_dir = Path(out_dir or root)
    table = summary_table(frame)
    written = [atomic_write_text(out_dir / "results.csv", frame.to_csv(index=False)),
               atomic_write_text(out_dir / "results.md", to_markdown(table))]
    plots = [plot_metric_vs_sparsity(frame, metric, out_dir / f"{SHORT_NAMES[metric]}_vs_sparsity.png")
             for metric in ("test/dice", "test/f1", "test/point_f1")]
    return table, written + [plot for plot in plots if plot] + write_paper_tables(frame, out_dir)
