"""The composed run config (``conf/train.yaml``): where the config root lives, and the checks that belong to no
single group: the run's own keys (``seed``, the top-level names), the trainer's length and the sizes that two
groups must agree on. Every group checks its own values where its objects are built
(``runs.assembly.build_run``; ``runs.assembly.validate_config`` runs all of it without reading data)."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from .errors import ConfigError

#: the Hydra config root, shipped inside the package (so an installed wheel finds it)
CONFIG_DIR = Path(__file__).resolve().parent / "conf"

TOP_LEVEL_KEYS = frozenset({
    "name", "sparsity", "seed", "optimizer", "tags", "dataset", "task", "model", "loss", "trainer", "logger",
    "callbacks", "paths", "augment", "speed", "resume", "gpu_pool", "scheduler",
})
GROUPS = ("dataset", "task", "model", "loss", "trainer")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def apply_raw_root(cfg: DictConfig) -> None:
    """``paths.raw=<dir>`` points the dataset at a raw folder of the user's (instead of ``dataset.root``)."""
    raw = (cfg.get("paths") or {}).get("raw")
    if raw:
        with open_dict(cfg):
            cfg.dataset.root = str(raw)


def _labels_suffix(point_labels: Any) -> str:
    """Run-folder suffix of a run trained from points (``dataset.point_labels`` set): ``_points``, else nothing."""
    return "" if point_labels is None else "_points"


# Run folders of point-trained runs differ from the mask-trained ones of the same loss, sparsity and seed.
OmegaConf.register_new_resolver("ece_labels_suffix", _labels_suffix, replace=True)


def plain(node: Any) -> Any:
    """A config node as plain Python containers (resolved); anything else unchanged."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def point_label_errors(task: str | None, point_labels: Any, point_radius: Any, fixed_box_size: Any) -> list[str]:
    """What is wrong with training or evaluating ``task`` on ``dataset.point_labels`` (None: masks, nothing)."""
    if point_labels is None:
        return []
    if task != "detection":
        return [f"dataset.point_labels: point labels train detection only (task=detection model=yollo); they cannot "
                f"train or evaluate segmentation (task={task} needs instance masks; dataset.point_labels=null uses a "
                "dataset's masks)"]
    errors = []
    if not point_radius:
        errors.append("task.metrics.point_radius=0: with dataset.point_labels the detections are scored by point F1; "
                      "give the matching radius in pixels (e.g. task.metrics.point_radius=8, about half a cell)")
    if (isinstance(point_labels, dict) and point_labels.get("box_size") is None
            and point_labels.get("box_size_um") is None and fixed_box_size is None):
        errors.append("dataset.point_labels.box_size=null (cell size unknown) needs task.fixed_box_size=<side in "
                      "pixels> (objectness only); or give the size: dataset.point_labels.box_size=<px> or "
                      "box_size_um=<um>")
    return errors


def run_key_errors(cfg: DictConfig) -> list[str]:
    """Problems with the run's own keys; a missing group is raised at once (nothing else can be checked)."""
    errors = []
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS)
    if unknown:
        errors.append(f"unknown top-level key(s) {', '.join(unknown)}; valid: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    missing = [group for group in GROUPS if not isinstance(cfg.get(group), DictConfig)]
    if missing:
        raise ConfigError(*errors, *(f"{group} is missing: choose one with `{group}=<name>` (see conf/{group}/)"
                                     for group in missing), listing=True)
    seed = cfg.get("seed")
    if not (_is_int(seed) and seed >= 0):
        errors.append(f"seed={seed!r} must be an integer >= 0")
    max_epochs = cfg.trainer.get("max_epochs")
    if not (_is_int(max_epochs) and max_epochs >= 1):
        errors.append(f"trainer.max_epochs={max_epochs!r} must be an integer >= 1")
    errors += point_label_errors(cfg.task.get("name"), plain(cfg.dataset.get("point_labels")),
                                 (cfg.task.get("metrics") or {}).get("point_radius"), cfg.task.get("fixed_box_size"))
    return errors


def size_errors(cfg: DictConfig, multiple: int | None) -> list[str]:
    """Image, crop and evaluation-tile sides of the dataset that the network's input ``multiple`` (2**depth)
    does not divide."""
    if not multiple:
        return []
    errors = []
    for key in ("image_size", "crop_size", "eval_tile"):
        size = cfg.dataset.get(key)
        if _is_int(size) and size >= 1 and size % multiple:
            errors.append(f"dataset.{key}={size} must be divisible by 2**model.depth = {multiple} "
                          f"(e.g. {max(multiple, size - size % multiple)})")
    return errors


__all__ = ["CONFIG_DIR", "ConfigError", "apply_raw_root", "run_key_errors", "size_errors"]
