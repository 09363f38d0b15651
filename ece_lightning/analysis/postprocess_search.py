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
                   min_sizes: Sequence[int] = (0, 10, 20, 40), thresholds: Sequence[float] | None = None
                   ) -> list[dict[str, Any]]:
    """Post-processing settings to try: ``components`` ignores ``min_distance``, so it appears once per size.
    ``thresholds`` (foreground probabilities in (0, 1)) adds ``threshold`` to every setting; None leaves it out
    (the trained 0.5)."""
    grid = []
    for method, size in itertools.product(methods, min_sizes):
        distances = min_distances if method == "watershed" else (0,)
        grid += [{"method": method, "min_size": int(size), "min_distance": int(d)} for d in distances]
    if thresholds is None:
        return grid
    for threshold in thresholds:
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold {threshold!r} must lie in (0, 1) (foreground probability)")
    return [{"threshold": float(t), **setting} for t in thresholds for setting in grid]


def foreground_samples(module: Any, dataset: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """(foreground margin, true instances) of every tile of ``dataset`` under ``module`` (a segmentation module in
    eval mode), padding cut off as in its test loop. The margin (float32, ``postprocess.segmentation.
    foreground_margin``: the log-odds of foreground) lets every setting choose its own probability threshold;
    > 0 is the module's own decision at 0.5 for two classes. The module's ``postprocess.tta`` applies."""
    from ..postprocess.segmentation import foreground_margin

    if getattr(module, "task", None) != "segmentation":
        raise ValueError(f"post-processing search needs a segmentation module, got task {getattr(module, 'task', None)!r}")
    samples = []
    module.eval()
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=1, shuffle=False):
            outputs, batch = module.crop_to_images(module.evaluation_outputs(batch["image"]), batch)
            margin = foreground_margin(outputs.float()).cpu().numpy().astype(np.float32)
            samples += list(zip(margin, batch["instances"].cpu().numpy()))
    return samples


def foreground_of(sample: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The foreground of one sample at probability ``threshold``: a bool sample is a foreground already (only
    0.5 applies to it), a float one is a foreground margin (``foreground_samples``)."""
    from ..postprocess.segmentation import probability_logit

    if sample.dtype == bool:
        if threshold != 0.5:
            raise ValueError(f"threshold {threshold} needs foreground margins, not a boolean foreground")
        return sample
    return sample > probability_logit(threshold)


def aji_of(samples: Iterable[tuple[np.ndarray, np.ndarray]], setting: Mapping[str, Any]) -> float:
    """The AJI of ``samples`` (foreground or foreground margin, true instances) when their foreground (at
    ``setting``'s ``threshold``, default 0.5) is cut into instances with the rest of ``setting``."""
    return scores_of(samples, setting)["aji"]


def scores_of(samples: Iterable[tuple[np.ndarray, np.ndarray]], setting: Mapping[str, Any]) -> dict[str, float]:
    """``aji`` and ``dice`` of ``samples`` under ``setting`` (the test metrics themselves)."""
    from ..metrics import AggregatedJaccardIndex, DiceScore
    from ..postprocess.segmentation import foreground_to_instances, split_threshold

    threshold, options = split_threshold(dict(setting))
    aji, dice = AggregatedJaccardIndex(), DiceScore()
    for sample, target in samples:
        foreground = foreground_of(sample, threshold)
        instances = foreground_to_instances(foreground, **options)
        aji.update(torch.from_numpy(instances)[None], torch.from_numpy(target)[None])
        dice.update(torch.from_numpy(foreground)[None], torch.from_numpy(target > 0)[None])
    return {"aji": float(aji.compute()), "dice": float(dice.compute())}


def score_settings(samples_by_run: Mapping[str, list[tuple[np.ndarray, np.ndarray]]],
                   settings: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (run, setting): ``run``, the setting's keys, ``aji`` and ``dice``."""
    rows = []
    for run, samples in samples_by_run.items():
        for setting in settings:
            rows.append({"run": run, **setting, **scores_of(samples, setting)})
    return pd.DataFrame(rows)


def best_setting(scores: pd.DataFrame) -> dict[str, Any]:
    """The setting with the highest mean AJI over runs (ties: the first in the grid's order)."""
    keys = [column for column in scores.columns if column not in ("run", "aji", "dice")]
    means = scores.groupby(keys, sort=False)["aji"].mean()
    best = means.idxmax()
    return {key: (value.item() if hasattr(value, "item") else value) for key, value in zip(keys, best)}
