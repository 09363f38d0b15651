"""The one writer of result tables: Markdown (README, results.md, paper tables) and LaTeX (booktabs) from a
header and rows of cells, with numbers formatted alike everywhere."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd


def cell_text(value: Any, digits: int = 3) -> str:
    """A table cell: floats with ``digits`` decimals (one from 10 on), NaN empty, anything else as text."""
    if isinstance(value, float):
        if pd.isna(value):
            return ""
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.{digits}f}"
    return str(value)


def markdown(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; cells that are not strings go through ``cell_text``."""
    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(c if isinstance(c, str) else cell_text(c) for c in cells) + " |"

    lines = [line([str(h) for h in header]), "|" + "|".join("---" for _ in header) + "|"]
    lines += [line(row) for row in rows]
    return "\n".join(lines) + "\n"


def latex_escape(text: Any) -> str:
    return str(text).replace("_", r"\_")


def latex(header: Sequence[str], rows: Iterable[Sequence[str]], label_columns: int = 1,
          caption: str | None = None) -> str:
    """A LaTeX ``table`` with a booktabs ``tabular``: ``label_columns`` left-aligned columns, the rest centred.
    Cells are written as given (escape them with ``latex_escape`` first)."""
    spec = "l" * label_columns + "c" * (len(header) - label_columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{caption}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
