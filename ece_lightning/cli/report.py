"""`ece-report DIR`: gather every metrics.json under DIR into results.csv, results.md, paper-style tables
(``table_<task>_<metric>.md`` / ``.tex``: rows dataset x loss, columns sparsity, mean +- std over seeds) and
metric-vs-sparsity plots."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from ..io import atomic_write_text

KEY_COLUMNS = ["dataset", "task", "model", "loss", "sparsity", "seed"]
METRIC_COLUMNS = ["test/dice", "test/aji", "test/f1", "test/precision", "test/recall", "test/exclusive_recall",
                  "test/fg_ratio"]
SHORT_NAMES = {column: column.removeprefix("test/") for column in METRIC_COLUMNS}


def collect(root: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per readable metrics.json under ``root`` (sorted), and a warning per unreadable one."""
    rows, problems = [], []
    for path in sorted(root.rglob("metrics.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            problems.append(f"{path}: unreadable ({error}); skipped")
            continue
        missing = [key for key in KEY_COLUMNS if key not in data]
        if not isinstance(data, dict) or missing:
            problems.append(f"{path}: missing field(s) {', '.join(missing)}; skipped")
            continue
        data["run_dir"] = str(path.parent.relative_to(root))
        rows.append(data)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)
    return frame, problems


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader compares: keys, test metrics that any run reported, epochs and wall time."""
    metrics = [c for c in METRIC_COLUMNS if c in frame.columns and frame[c].notna().any()]
    extras = [c for c in ("epochs", "wall_s") if c in frame.columns]
    return frame[KEY_COLUMNS + metrics + extras].rename(columns=SHORT_NAMES)


def to_markdown(table: pd.DataFrame) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            if pd.isna(value):
                return ""
            return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
        return str(value)

    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    lines = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *lines]) + "\n"


def plot_metric_vs_sparsity(frame: pd.DataFrame, metric: str, path: Path) -> Path | None:
    """Test ``metric`` against sparsity, one line per (dataset, task, loss); seeds give error bars."""
    if metric not in frame.columns or frame[metric].isna().all():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..analysis.sweeps import draw_metric_vs_sparsity

    fig, ax = plt.subplots(figsize=(6, 4))
    draw_metric_vs_sparsity(ax, frame, metric, by=("dataset", "task", "loss"))
    ax.set_title(f"test {SHORT_NAMES.get(metric, metric)} against the fraction of annotated objects")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def report(root: Path, out_dir: Path | None = None) -> tuple[pd.DataFrame, list[Path]]:
    """Write results.csv, results.md and the Dice- and F1-vs-sparsity plots (for the tasks present) for the
    runs under ``root``;
    returns the summary table and the files written."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory (give a run or sweep output directory)")
    frame, problems = collect(root)
    for problem in problems:
        print(f"ece-report: warning: {problem}", file=sys.stderr)
    if frame.empty:
        raise FileNotFoundError(f"{root}: no metrics.json found under it (did the runs finish?)")
    out_dir = out_dir or root
    table = summary_table(frame)
    written = [atomic_write_text(out_dir / "results.csv", frame.to_csv(index=False)),
               atomic_write_text(out_dir / "results.md", to_markdown(table))]
    plots = [plot_metric_vs_sparsity(frame, metric, out_dir / f"{SHORT_NAMES[metric]}_vs_sparsity.png")
             for metric in ("test/dice", "test/f1")]
    return table, written + [plot for plot in plots if plot] + write_paper_tables(frame, out_dir)


def write_paper_tables(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``table_<task>_<metric>.md`` and ``.tex`` for each task's paper metrics (Dice, AJI; F1): rows dataset x
    loss, columns sparsity, mean +- std over seeds."""
    from ..analysis.sweeps import TASK_METRICS, paper_table, table_latex, table_markdown

    written = []
    for task, metrics in TASK_METRICS.items():
        runs = frame[frame["task"] == task]
        for metric in metrics:
            if runs.empty or metric not in runs.columns or runs[metric].isna().all():
                continue
            table = paper_table(runs, metric)
            stem = f"table_{task}_{SHORT_NAMES[metric]}"
            caption = f"{task}: test {SHORT_NAMES[metric]} (mean $\\pm$ std over seeds) against the fraction of annotated objects"
            written += [atomic_write_text(out_dir / f"{stem}.md", table_markdown(table, metric)),
                        atomic_write_text(out_dir / f"{stem}.tex", table_latex(table, metric, caption=caption))]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ece-report", description=__doc__)
    parser.add_argument("directory", type=Path, help="run or sweep output directory to search for metrics.json")
    parser.add_argument("--out", type=Path, default=None, help="where to write the results (default: DIRECTORY)")
    args = parser.parse_args(argv)
    try:
        table, written = report(args.directory, args.out)
    except FileNotFoundError as error:
        print(f"ece-report: error: {error}", file=sys.stderr)
        return 2
    print(to_markdown(table))
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
