"""The paper's numbers (Panteli et al., ICCV 2021), to print beside ours: Table 3 (segmentation: Dice and AJI at
30, 60 and 100% of the annotations) and Table 4 (detection: F1 at 90 and 100%). The paper trains a full-width
U-Net for 300 epochs on each dataset's official training set and tests on its official test set; our recipes
differ (README), so these rows show direction, not a reproduction target."""

from __future__ import annotations

import csv
import math
from importlib import resources

import pandas as pd


def _read(name: str) -> dict[tuple[str, str, str], dict[float, float]]:
    """The package's ``name`` CSV: dataset, loss, metric, then one column per sparsity (empty: not in the paper)."""
    with resources.files(__package__).joinpath(name).open(encoding="utf-8") as handle:
        reader = csv.reader(handle)
        sparsities = [float(value) for value in next(reader)[3:]]
        return {(dataset, loss, metric): {s: float(v) for s, v in zip(sparsities, values) if v}
                for dataset, loss, metric, *values in reader}


#: (dataset, loss entry, metric) -> {sparsity: value}: Table 3 (Dice, AJI at 30 / 60 / 100%) and Table 4 (F1 at
#: 90 / 100%) as printed, from paper_tables.csv
PAPER: dict[tuple[str, str, str], dict[float, float]] = _read("paper_tables.csv")


def with_paper_rows(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """A ``sweeps.paper_table`` (rows dataset x loss) with a ``<loss> (paper)`` row under each of its rows the paper
    reports, filled where the paper has the sparsity; other tables are returned unchanged."""
    if list(table.index.names) != ["dataset", "loss"]:
        return table
    rows, index = [], []
    for key, row in table.iterrows():
        rows.append(row)
        index.append(key)
        paper = PAPER.get((key[0], key[1], metric))
        if paper:
            rows.append(pd.Series({c: (paper[c], math.nan, 1) if c in paper else math.nan for c in table.columns},
                                  name=(key[0], f"{key[1]} (paper)")))
            index.append((key[0], f"{key[1]} (paper)"))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=table.index.names), columns=table.columns)
