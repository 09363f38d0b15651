"""Sweep results as tables and curves: one row per run (its metrics.json), paper-style tables (rows
dataset x loss, columns sparsity, mean +- std over seeds) in Markdown and LaTeX, and metric-vs-sparsity
curves with seeds as error bars."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from . import tables

KEY_COLUMNS = ["dataset", "task", "model", "loss", "sparsity", "seed"]
METRIC_COLUMNS = ["test/dice", "test/aji", "test/f1", "test/precision", "test/recall", "test/exclusive_recall",
                  "test/point_f1", "test/point_precision", "test/point_recall", "test/count_ratio", "test/fg_ratio"]
SHORT_NAMES = {column: column.removeprefix("test/") for column in METRIC_COLUMNS}
#: metrics a paper table can show, by task
TASK_METRICS = {"segmentation": ("test/dice", "test/aji"), "detection": ("test/f1", "test/point_f1")}
#: metrics that get a paper table of their own (precision and recall beside F1: recall bought with precision shows)
TABLE_METRICS = {"segmentation": ("test/dice", "test/aji"),
                 "detection": ("test/f1", "test/precision", "test/recall", "test/point_f1", "test/point_precision",
                               "test/point_recall")}


def collect(root: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per readable metrics.json under ``root`` (sorted), and a warning per unreadable one."""
    rows, problems = [], []
    for path in sorted(root.rglob("metrics.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            problems.append(f"{path}: unreadable ({error}); skipped")
            continue
        missing = [key for key in KEY_COLUMNS if key not in data] if isinstance(data, dict) else KEY_COLUMNS
        if missing:
            problems.append(f"{path}: missing field(s) {', '.join(missing)}; skipped")
            continue
        data["run_dir"] = str(path.parent.relative_to(root))
        if data.get("labels") == "points":  # trained from points: its own row beside the mask-trained one
            data["loss"] = f"{data['loss']}+points"
        data["loss"] = f"{data['loss']}{evaluation_mark(data)}"
        rows.append(data)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)
    return frame, problems


def evaluation_mark(metrics: dict[str, Any]) -> str:
    """`` (val)``, `` (trained on cpm15)``, ... for an ``ece-eval`` evaluation of another split than test or of a
    model trained on another dataset; empty for a training run and for an evaluation of its own test split. An
    evaluation writes its metrics under ``test/`` keys whatever it evaluated, so without the mark a validation
    evaluation in a sweep folder would count as one more test seed of its run."""
    if "checkpoint" not in metrics or "split" not in metrics:  # a training run
        return ""
    notes = [] if metrics["split"] == "test" else [str(metrics["split"])]
    if metrics.get("trained_on") not in (None, metrics.get("dataset")):
        notes.append(f"trained on {metrics['trained_on']}")
    return f" ({', '.join(notes)})" if notes else ""


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader compares: keys, test metrics that any run reported, epochs and wall time."""
    metrics = [c for c in METRIC_COLUMNS if c in frame.columns and frame[c].notna().any()]
    extras = [c for c in ("epochs", "wall_s") if c in frame.columns]
    return frame[KEY_COLUMNS + metrics + extras].rename(columns=SHORT_NAMES)


def to_markdown(table: pd.DataFrame) -> str:
    """A frame as a Markdown table (``tables.markdown``)."""
    return tables.markdown(list(table.columns), table.itertuples(index=False))


def load_sweep(root: str | Path) -> pd.DataFrame:
    """One row per finished run under ``root`` (every metrics.json), sorted by dataset, task, model, loss,
    sparsity, seed; ``run_dir`` is the run's folder relative to ``root``. Unreadable files are skipped
    with a warning; a folder without any run is a FileNotFoundError naming it."""
    import warnings

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory (give a run or sweep output directory)")
    frame, problems = collect(root)
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    if frame.empty:
        raise FileNotFoundError(f"{root}: no metrics.json under it (did the runs finish?)")
    return frame


def load_wandb(path: str, api: Any = None) -> pd.DataFrame:
    """The same table from the W&B runs of ``path`` ("entity/project"), for sweeps logged with
    ``logger=wandb``: each run's config gives the key columns (``loss``: the config entry ``ece-train`` logs as
    ``loss_entry``, e.g. elr_asym) and its summary the metrics. ``api`` is a
    ``wandb.Api()`` (made here when None; needs network or a local server)."""
    if api is None:
        import wandb

        api = wandb.Api()
    rows = []
    for run in api.runs(path):
        config = dict(run.config)
        row = {key: _config_value(config, key) for key in KEY_COLUMNS}
        row["loss"] = config.get("loss_entry") or row["loss"]  # the config entry (elr_asym), as in metrics.json
        row.update({k: v for k, v in dict(run.summary).items() if isinstance(k, str) and k.startswith("test/")})
        row["run_dir"] = run.name
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise FileNotFoundError(f"W&B project {path!r} has no runs")
    return frame.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)


def _config_value(config: dict[str, Any], key: str) -> Any:
    """A key column from a logged Hydra config: top-level (sparsity, seed) or a group's ``name``."""
    value = config.get(key)
    if isinstance(value, dict):
        return value.get("name")
    return value


def paper_table(frame: pd.DataFrame, metric: str, rows: Sequence[str] = ("dataset", "loss"),
                column: str = "sparsity") -> pd.DataFrame:
    """Mean and standard deviation over seeds of ``metric`` (e.g. ``test/dice``): a frame indexed by
    ``rows`` with one column per value of ``column``, each cell a (mean, std, n) tuple; missing cells NaN."""
    if metric not in frame.columns:
        raise KeyError(f"no {metric!r} in the runs; available: {', '.join(c for c in frame.columns if c.startswith('test/'))}")
    stats = frame.dropna(subset=[metric]).groupby([*rows, column])[metric].agg(["mean", "std", "count"])
    cells = pd.Series([(m, s, int(n)) for m, s, n in stats.itertuples(index=False)], index=stats.index)
    return cells.unstack(column)


def format_cell(cell: Any, digits: int = 3, latex: bool = False) -> str:
    if not isinstance(cell, tuple):
        return "-"
    mean, std, count = cell
    if count < 2 or pd.isna(std):
        return f"{mean:.{digits}f}"
    separator = r" $\pm$ " if latex else " ± "
    return f"{mean:.{digits}f}{separator}{std:.{digits}f}"


def values_cell(values: Sequence[float], digits: int = 3) -> str:
    """``format_cell`` of a list of values (one per seed): "mean ± std", the value alone, or "-" when empty."""
    if not len(values):
        return "-"
    series = pd.Series(values, dtype=float)
    return format_cell((series.mean(), series.std(), len(series)), digits)


def table_markdown(table: pd.DataFrame, metric: str, digits: int = 3) -> str:
    """A paper table as Markdown: one row per index entry, "mean ± std" cells (std when >= 2 seeds)."""
    header = [*table.index.names, *(f"{metric.removeprefix('test/')} @ {c:g}" for c in table.columns)]
    rows = []
    for key, row in table.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        rows.append([*map(str, key), *(format_cell(v, digits) for v in row)])
    return tables.markdown(header, rows)


def detection_summary_markdown(frame: pd.DataFrame, prefix: str = "", digits: int = 3) -> str | None:
    """One Markdown table of detection runs (rows dataset x loss, columns sparsity): each cell F1 mean ± std over
    seeds, then the mean precision, recall and count ratio in brackets, so recall bought with precision (or an
    over-count) is seen beside the F1. ``prefix`` "point_" gives the point metrics; None when no run has the F1."""
    f1 = f"test/{prefix}f1"
    if f1 not in frame.columns or frame[f1].isna().all():
        return None
    runs = frame.dropna(subset=[f1])
    sparsities = sorted(runs["sparsity"].unique())
    header = ["dataset", "loss", *(f"{prefix}F1 (P, R, count) @ {s:g}" for s in sparsities)]
    rows = []
    for (dataset, loss), group in runs.groupby(["dataset", "loss"], sort=True):
        cells = []
        for sparsity in sparsities:
            cell = group[group["sparsity"] == sparsity]
            if cell.empty:
                cells.append("-")
                continue
            text = values_cell(cell[f1].tolist(), digits)
            extras = [f"{name} {cell[column].mean():.2f}" for name, column in
                      (("P", f"test/{prefix}precision"), ("R", f"test/{prefix}recall"), ("count", "test/count_ratio"))
                      if column in cell.columns and cell[column].notna().any()]
            cells.append(f"{text} ({', '.join(extras)}; n={len(cell)})" if extras else f"{text} (n={len(cell)})")
        rows.append([dataset, loss, *cells])
    return tables.markdown(header, rows)


def table_latex(table: pd.DataFrame, metric: str, digits: int = 3, caption: str | None = None) -> str:
    """A paper table as a LaTeX ``tabular`` (booktabs rules), the best mean per column in bold (rows of the paper,
    ``<loss> (paper)``, shown but not ranked)."""
    names = list(table.index.names)
    ours = [not str(key[-1] if isinstance(key, tuple) else key).endswith("(paper)") for key in table.index]
    best = {c: max((v[0] for v in table.loc[ours, c] if isinstance(v, tuple)), default=None) for c in table.columns}
    short = tables.latex_escape(metric.removeprefix("test/"))
    header = [*(tables.latex_escape(n) for n in names), *(f"{short} @ {c:g}" for c in table.columns)]
    rows = []
    for key, row in table.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        cells = []
        for column, value in row.items():
            text = format_cell(value, digits, latex=True)
            if isinstance(value, tuple) and best[column] is not None and value[0] == best[column]:
                text = rf"\textbf{{{text}}}"
            cells.append(text)
        rows.append([*(tables.latex_escape(k) for k in key), *cells])
    return tables.latex(header, rows, label_columns=len(names), caption=caption)


def plot_curves(frame: pd.DataFrame, metrics: Iterable[str] | None = None):
    """One panel per metric (default: the test metrics the runs report among Dice, AJI, F1): the metric
    against sparsity, one line per (dataset, loss), mean over seeds with their std as error bars.
    Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    if metrics is None:
        metrics = [m for task in TASK_METRICS.values() for m in task if m in frame.columns and frame[m].notna().any()]
    metrics = list(metrics)
    if not metrics:
        raise ValueError("no test metric to plot (the runs report none of Dice, AJI, F1)")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        draw_metric_vs_sparsity(ax, frame.dropna(subset=[metric]), metric, by=("dataset", "loss"), legend_size=7)
    fig.tight_layout()
    return fig


def draw_metric_vs_sparsity(ax, frame: pd.DataFrame, metric: str, by: Sequence[str] = ("dataset", "loss"),
                            legend_size: int = 8) -> None:
    """On ``ax``: ``metric`` against sparsity, one line per group of ``by`` (its last key, the loss, names the
    line; the others go in brackets), mean over seeds with their std as error bars, axes 0..1."""
    for keys, group in frame.groupby(list(by), sort=True):
        *context, loss = keys
        stats = group.groupby("sparsity")[metric].agg(["mean", "std"]).reset_index()
        ax.errorbar(stats["sparsity"], stats["mean"], yerr=stats["std"].fillna(0.0), marker="o", capsize=3,
                    label=f"{loss} ({', '.join(map(str, context))})")
    ax.set_xlabel("sparsity (fraction of annotated objects)")
    ax.set_ylabel(metric.removeprefix("test/"))
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
