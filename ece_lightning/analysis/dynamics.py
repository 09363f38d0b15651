"""Loss-dynamics tables (``loss_dynamics.csv`` of the LossDynamics callback): reading, offline
re-smoothing, a summary of the second derivatives, and the paper's Figure 1 (Obj vs Background, CE vs ECE)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..callbacks.dynamics import COLUMNS, COMPONENTS

FILENAME = "loss_dynamics.csv"


def read_dynamics(path: str | Path) -> pd.DataFrame:
    """The table of a run folder (or the CSV itself), one row per step; a step written twice (an
    interrupted run resumed from its last checkpoint) keeps its last row."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no loss-dynamics table (train with callbacks=loss_dynamics)")
    frame = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a loss-dynamics table (missing columns {', '.join(missing)})")
    return frame.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)


def ema(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with alpha = 2 / (span + 1), starting at the first finite value; NaN
    inputs keep the previous average (the callback's rule)."""
    alpha = 2.0 / (span + 1.0)
    out = np.empty(len(values), dtype=np.float64)
    current = np.nan
    for i, x in enumerate(np.asarray(values, dtype=np.float64)):
        if not np.isnan(x):
            current = x if np.isnan(current) else current + alpha * (x - current)
        out[i] = current
    return out


def resmooth(frame: pd.DataFrame, span: int) -> pd.DataFrame:
    """The smoothed values and derivatives recomputed from the raw ``obj``/``background`` columns with
    another span (the same causal scheme as the callback, so ``span`` equal to the callback's reproduces
    its columns)."""
    out = frame.copy()
    for name in COMPONENTS:
        raw = frame[name].to_numpy(dtype=np.float64)
        missing = np.isnan(raw)  # an empty group: every smoothed series holds its value (as the callback)
        smooth = ema(raw, span)
        d1 = ema(np.where(missing, np.nan, np.nan_to_num(np.diff(smooth, prepend=np.nan), nan=0.0)), span)
        d2 = ema(np.where(missing, np.nan, np.nan_to_num(np.diff(d1, prepend=np.nan), nan=0.0)), span)
        out[f"{name}_smooth"], out[f"{name}_d1"], out[f"{name}_d2"] = smooth, d1, d2
    return out


def summarize(tables: Mapping[str, pd.DataFrame], skip_fraction: float = 0.2) -> pd.DataFrame:
    """Per run and component: the final smoothed value, and the mean absolute first and second derivative
    over the steps after the first ``skip_fraction`` of training (the initial transient)."""
    rows = []
    for label, frame in tables.items():
        late = frame.iloc[int(len(frame) * skip_fraction):]
        for name in COMPONENTS:
            rows.append({"run": label, "component": name, "final": late[f"{name}_smooth"].iloc[-1],
                         "mean_abs_d1": late[f"{name}_d1"].abs().mean(),
                         "mean_abs_d2": late[f"{name}_d2"].abs().mean(), "steps": len(frame)})
    return pd.DataFrame(rows)


def runs_with_dynamics(root: str | Path) -> dict[str, pd.DataFrame]:
    """Every run under ``root`` that has a loss-dynamics table, labelled "<loss> @ <sparsity>" from its
    metrics.json (or by its folder name while it has none)."""
    tables = {}
    for path in sorted(Path(root).rglob(FILENAME)):
        label = path.parent.name
        metrics = path.parent / "metrics.json"
        if metrics.is_file():
            data = json.loads(metrics.read_text())
            label = f"{data.get('loss')} @ {data.get('sparsity'):g}" + (
                f" seed {data['seed']}" if data.get("seed", 0) else "")
        tables[label] = read_dynamics(path)
    if not tables:
        raise FileNotFoundError(f"{root}: no {FILENAME} under it (train with callbacks=loss_dynamics)")
    return tables


def plot_loss_dynamics(tables: Mapping[str, pd.DataFrame], skip_fraction: float = 0.0,
                       components: tuple[str, ...] = COMPONENTS):
    """Figure 1: one row per run (e.g. CE, ECE), columns = smoothed loss component, first and second
    time derivative, the ``components`` (Obj and Background; one alone to see its own scale) in each
    panel; panels of a column share their y axis. Returns the matplotlib Figure."""
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component {unknown[0]!r}; components are {', '.join(COMPONENTS)}")
    import matplotlib.pyplot as plt

    colours = {"obj": "tab:green", "background": "tab:purple"}
    titles = {"": "loss component (EMA)", "_d1": "first derivative / step", "_d2": "second derivative / step²"}
    fig, axes = plt.subplots(len(tables), 3, figsize=(13, 3.0 * len(tables)), squeeze=False, sharex=True, sharey="col")
    for row, (label, frame) in zip(axes, tables.items()):
        frame = frame.iloc[int(len(frame) * skip_fraction):]
        for ax, (suffix, title) in zip(row, titles.items()):
            column_suffix = "_smooth" if suffix == "" else suffix
            for name in components:
                ax.plot(frame["step"], frame[f"{name}{column_suffix}"], color=colours[name], lw=1.2,
                        label="Obj (annotated)" if name == "obj" else "Background (unannotated)")
            if suffix:
                ax.axhline(0.0, color="black", lw=0.6)
            ax.set_title(f"{label}: {title}", fontsize=9)
            ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
