"""Train/val/test splits of a prepared dataset: seeded, by image or by group (slide/patient).

``method="given"`` keeps the dataset's own test split and draws validation from its training images;
``method="random"`` draws test and validation from all images; ``method="auto"`` is ``given`` when the
dataset gives test images and ``random`` otherwise (e.g. a copy holding only the training release). Sizes are fractions in (0, 1) of the
units (images or groups) or whole counts >= 1; at least one unit stays in training.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DatasetError
from .readers.common import Item

METHODS = ("auto", "given", "random")
UNITS = ("image", "group")


def _check_size(size: Any, field: str) -> float:
    if isinstance(size, bool) or not isinstance(size, numbers.Real) or size < 0 or (size >= 1 and size != int(size)):
        raise ValueError(f"split.{field}={size!r}: use a fraction in [0, 1) or a whole count >= 1")
    return float(size)


def check_split(method: str = "given", by: str = "image", val: float = 0.3, test: float = 0.2, seed: int = 0) -> None:
    """ValueError naming the first bad split setting (see ``split_items``)."""
    if method not in METHODS:
        raise ValueError(f"split.method={method!r} must be one of {', '.join(METHODS)}")
    if by not in UNITS:
        raise ValueError(f"split.by={by!r} must be one of {', '.join(UNITS)}")
    _check_size(val, "val")
    _check_size(test, "test")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"split.seed={seed!r} must be an integer >= 0")


def _count(size: float, total: int) -> int:
    return int(size) if size >= 1 else int(round(size * total))


def split_items(items: Sequence[Item], method: str = "given", by: str = "image", val: float = 0.3,
                test: float = 0.2, seed: int = 0) -> dict[str, list[str]]:
    """Image ids per split (``train``, ``val``, ``test``), each sorted."""
    try:
        check_split(method, by, val, test, seed)
    except ValueError as error:
        raise DatasetError(f"dataset.{error}") from None
    rng = np.random.default_rng(int(seed))

    def unit(item: Item) -> str:
        return (item.group or item.id) if by == "group" else item.id

    if method == "auto":
        method = "given" if any(i.split == "test" for i in items) else "random"
    if method == "given":
        test_units = {unit(i) for i in items if i.split == "test"}
        if not test_units:
            raise DatasetError("dataset.split.method=given but the dataset gives no test images; "
                               "use dataset.split.method=random")
        pool = sorted({unit(i) for i in items if i.split != "test"} - test_units)
        order = [pool[k] for k in rng.permutation(len(pool))]
    else:
        units = sorted({unit(i) for i in items})
        order = [units[k] for k in rng.permutation(len(units))]
        n_test = _count(test, len(units))
        test_units, order = set(order[:n_test]), order[n_test:]
    n_val = _count(val, len(order))
    if n_val >= len(order) or not test_units:
        raise DatasetError(f"dataset.split (val={val}, test={test}) leaves no {by} to train on "
                           f"or none to test on ({len(order)} {by}s outside the test split)")
    val_units = set(order[:n_val])
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for item in items:
        key = unit(item)
        splits["test" if key in test_units else "val" if key in val_units else "train"].append(item.id)
    return {name: sorted(ids) for name, ids in splits.items()}
