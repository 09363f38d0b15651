"""The paper's numbers (Panteli et al., ICCV 2021), to print beside ours: Table 3 (segmentation: Dice and AJI at
30, 60 and 100% of the annotations) and Table 4 (detection: F1 at 90 and 100%). The paper trains a full-width
U-Net for 300 epochs on each dataset's official training set and tests on its official test set; our recipes
differ (README), so these rows show direction, not a reproduction target."""

from __future__ import annotations

import math

import pandas as pd

#: (dataset, loss entry, metric) -> {sparsity: value}
PAPER: dict[tuple[str, str, str], dict[float, float]] = {
    ("tnbc", "ce", "test/dice"): {0.3: 0.43, 0.6: 0.61, 1.0: 0.84},
    ("tnbc", "ce", "test/aji"): {0.3: 0.24, 0.6: 0.43, 1.0: 0.73},
    ("tnbc", "ece", "test/dice"): {0.3: 0.80, 0.6: 0.83, 1.0: 0.82},
    ("tnbc", "ece", "test/aji"): {0.3: 0.58, 0.6: 0.73, 1.0: 0.74},
    ("cpm15", "ce", "test/dice"): {0.3: 0.47, 0.6: 0.61, 1.0: 0.80},
    ("cpm15", "ce", "test/aji"): {0.3: 0.25, 0.6: 0.52, 1.0: 0.69},
    ("cpm15", "ece", "test/dice"): {0.3: 0.79, 0.6: 0.82, 1.0: 0.81},
    ("cpm15", "ece", "test/aji"): {0.3: 0.55, 0.6: 0.64, 1.0: 0.69},
    ("cpm15", "elr_cifar100", "test/dice"): {0.3: 0.59, 0.6: 0.67, 1.0: 0.76},
    ("consep", "ce", "test/dice"): {0.3: 0.47, 0.6: 0.61, 1.0: 0.80},
    ("consep", "ce", "test/aji"): {0.3: 0.33, 0.6: 0.45, 1.0: 0.67},
    ("consep", "ece", "test/dice"): {0.3: 0.78, 0.6: 0.80, 1.0: 0.79},
    ("consep", "ece", "test/aji"): {0.3: 0.58, 0.6: 0.70, 1.0: 0.69},
    ("consep", "ce", "test/f1"): {0.9: 0.50, 1.0: 0.51},
    ("consep", "ece", "test/f1"): {0.9: 0.48, 1.0: 0.48},
    ("consep", "ece_exhaustive", "test/f1"): {0.9: 0.53, 1.0: 0.52},
    ("kumar", "ce", "test/f1"): {0.9: 0.64, 1.0: 0.63},
    ("kumar", "ece", "test/f1"): {0.9: 0.61, 1.0: 0.62},
    ("kumar", "ece_exhaustive", "test/f1"): {0.9: 0.66, 1.0: 0.68},
}


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
