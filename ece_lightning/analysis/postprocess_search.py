"""Choosing instance post-processing (how predicted foreground is cut into nuclei, which drives AJI) on validation
data: each checkpoint's foreground is computed once per image, then every candidate setting cuts it into
instances and is scored with the test metric itself (``metrics.AggregatedJaccardIndex``).

    samples = foreground_samples(module, dataset)          # one forward pass per tile
    table = score_settings(samples_by_run, candidate_grid())  # AJI of every setting for every run
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader


def candidate_grid(methods: Sequence[str] = ("watershed", "components"), min_distances: Sequence[int] = (4, 6, 8, 10, 12),
                   min_sizes: Sequence[int] = (0, 10, 20, 40)) -> list[dict[str, Any]]:
    """Post-processing settings to try: ``components`` ignores ``min_distance``, so it appears once per size."""
    grid = []
    for method, size in itertools.product(methods, min_sizes):
        distances = min_distances if method == "watershed" else (0,)
        grid += [{"method": method, "min_size": int(size), "min_distance": int(d)} for d in distances]
    return grid


def foreground_samples(module: Any, dataset: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """(predicted foreground, true instances) of every tile of ``dataset`` under ``module`` (a segmentation module
    in eval mode), padding cut off as in its test loop."""
    from ..postprocess.segmentation import foreground_from_logits

    if getattr(module, "task", None) != "segmentation":
        raise ValueError(f"post-processing search needs a segmentation module, got task {getattr(module, 'task', None)!r}")
    samples = []
    module.eval()
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=1, shuffle=False):
            outputs, batch = module.crop_to_images(module(batch["image"]), batch)
            foreground = foreground_from_logits(outputs).cpu().numpy()
            samples += list(zip(foreground, batch["instances"].cpu().numpy()))
    return samples


def aji_of(samples: Iterable[tuple[np.ndarray, np.ndarray]], setting: Mapping[str, Any]) -> float:
    """The AJI of ``samples`` when their foreground is cut into instances with ``setting``."""
    from ..metrics import AggregatedJaccardIndex
    from ..postprocess.segmentation import foreground_to_instances

    metric = AggregatedJaccardIndex()
    for foreground, target in samples:
        instances = foreground_to_instances(foreground, **setting)
        metric.update(torch.from_numpy(instances)[None], torch.from_numpy(target)[None])
    return float(metric.compute())


def score_settings(samples_by_run: Mapping[str, list[tuple[np.ndarray, np.ndarray]]],
                   settings: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (run, setting): ``run``, the setting's keys and ``aji``."""
    rows = []
    for run, samples in samples_by_run.items():
        for setting in settings:
            rows.append({"run": run, **setting, "aji": aji_of(samples, setting)})
    return pd.DataFrame(rows)


def best_setting(scores: pd.DataFrame) -> dict[str, Any]:
    """The setting with the highest mean AJI over runs (ties: the first in the grid's order)."""
    keys = [column for column in scores.columns if column not in ("run", "aji")]
    means = scores.groupby(keys, sort=False)["aji"].mean()
    best = means.idxmax()
    return {key: (value.item() if hasattr(value, "item") else value) for key, value in zip(keys, best)}
