"""The composed run config (``conf/train.yaml``): where the config root lives, and the checks that belong to no
single group: the run's own keys (``seed``, the top-level names), the trainer's length and the sizes that two
groups must agree on. Every group checks its own values where its objects are built
(``runs.assembly.build_run``; ``runs.assembly.validate_config`` runs all of it without reading data)."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

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
