"""What a run folder says about a run: the config fingerprint, whether it already finished (a re-run sweep skips
it), whether an interrupted run of the same config can resume, and keeping Hydra's files of a finished run."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from ..errors import ConfigError
from ..io import fingerprint

log = logging.getLogger("ece_lightning.train")

RUN_STATE = "run_state.json"
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
#: settings of how a run is driven, not of what it learns
UNFINGERPRINTED = ("paths", "logger", "tags", "resume", "gpu_pool")
UNFINGERPRINTED_CALLBACKS = ("checkpoint", "progress_bar")
UNFINGERPRINTED_LOADER = ("num_workers", "pin_memory", "persistent_workers")
#: (group, key, value when off[, the group's ``name`` it was added to]) added after runs were fingerprinted; switched
#: off they are left out, so those runs still count as finished
ADDED_OFF_KEYS = (("task", "teacher", None), ("task", "fixed_box_size", None), ("dataset", "point_labels", None),
                  ("model", "input_norm", "none"), ("loss", "annotation_margin", 0, "pu"),
                  ("task", "separate_touching", False))


def config_fingerprint(cfg: DictConfig, layout: str = "current") -> str:
    """SHA-1 of what decides a run's results: the resolved config with every ``paths`` entry replaced by its
    name (so the output folder, the datasets folder or the cache do not count), without ``logger``, ``tags``,
    the loader's process settings, ``resume``, ``gpu_pool`` and the checkpoint and progress-bar callbacks.

    ``layout`` gives the fingerprint the same config had in an earlier config layout, so runs finished then still
    count as finished: ``v2`` (callbacks and the trainer by ``_target_``, Adam without ``optimizer.name``, no
    ``scheduler`` nor ``model.norm``) and
    ``v1`` (v2 before resuming existed, when the checkpoint callback's settings counted).
    """
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        for key in list(cfg.get("paths") or {}):
            cfg.paths[key] = f"<paths.{key}>"
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in UNFINGERPRINTED:
        plain.pop(key, None)
    for key in UNFINGERPRINTED_LOADER:
        plain.get("dataset", {}).pop(key, None)
    for group, key, off, *only_name in ADDED_OFF_KEYS:  # keys added later: switched off, they change nothing learnt
        section = plain.get(group)
        if (isinstance(section, dict) and key in section and section[key] == off
                and (not only_name or section.get("name") == only_name[0])):
            section.pop(key)
    callbacks = plain.get("callbacks") or {}
    if layout == "current":
        for key in UNFINGERPRINTED_CALLBACKS:
            callbacks.pop(key, None)
        return fingerprint(plain)
    if layout not in ("v1", "v2"):
        raise ValueError(f"layout={layout!r} is not one of current, v2, v1")
    had_checkpoint = callbacks.pop("checkpoint", None) is not None
    progress_bar = callbacks.pop("progress_bar", None)
    plain = _v2_layout(plain)
    if layout == "v1":
        if had_checkpoint:
            plain["callbacks"]["model_checkpoint"] = dict(_V1_MODEL_CHECKPOINT)
        if progress_bar is not None:
            plain["callbacks"]["progress_bar"] = {"_target_": "pytorch_lightning.callbacks.TQDMProgressBar",
                                                  "refresh_rate": progress_bar.get("refresh_rate", 5)}
    return fingerprint(plain)


_V1_MODEL_CHECKPOINT = {"_target_": "pytorch_lightning.callbacks.ModelCheckpoint",
                        "dirpath": "<paths.output_dir>/checkpoints", "save_last": True, "save_top_k": 0}
# Callback entries of the v2 layout: its key and ``_target_`` for each of today's keys.
_V2_CALLBACKS = {"loss_schedules": ("ece_annealing", "ece_lightning.callbacks.ECEAnnealing"),
                 "test_predictions": ("test_predictions", "ece_lightning.callbacks.TestPredictions"),
                 "loss_dynamics": ("loss_dynamics", "ece_lightning.callbacks.LossDynamics"),
                 "test_curve": ("test_curve", "ece_lightning.callbacks.TestCurve")}


def _v2_layout(plain: dict[str, Any]) -> dict[str, Any]:
    """A fingerprinted config (without the unfingerprinted callbacks) as the v2 layout wrote it."""
    callbacks = {}
    for key, options in (plain.get("callbacks") or {}).items():
        old_key, target = _V2_CALLBACKS.get(key, (key, None))
        options = dict(options or {})
        if key == "loss_schedules" and options.get("log_values", True) is True:
            options.pop("log_values", None)  # v2's config left it at its default
        callbacks[old_key] = {"_target_": target, **options} if target else options
    plain = {**plain, "callbacks": callbacks}
    # Keys that v2 did not have, at the values that reproduce it.
    if plain.get("scheduler") == {"name": "none"}:
        plain.pop("scheduler")
    if (plain.get("model") or {}).get("norm") == "none" and plain["model"].get("name") == "unet":
        plain["model"] = {k: v for k, v in plain["model"].items() if k != "norm"}
    if "trainer" in plain:
        plain["trainer"] = {"_target_": "pytorch_lightning.Trainer", **plain["trainer"]}
    optimizer = dict(plain.get("optimizer") or {})
    if optimizer.get("name") == "adam":
        optimizer.pop("name")
        plain["optimizer"] = optimizer
    return plain


def finished_fingerprints(cfg: DictConfig) -> set[str]:
    """The fingerprints a finished run of ``cfg`` may carry: today's and those of the earlier layouts."""
    return {config_fingerprint(cfg, layout) for layout in ("current", "v2", "v1")}


def completed_run(output_dir: Path, cfg: DictConfig) -> dict[str, Any] | None:
    """The metrics of a finished run of this very config in ``output_dir`` (a sweep re-run skips it), None
    when there is none; a finished run of another config there is a ConfigError (never overwritten)."""
    path = output_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a damaged file is no result: train again
    if "config_sha1" not in metrics:  # finished by an ece-lightning before fingerprints: trust it, say so
        log.warning("%s holds a run finished before config fingerprints existed; kept and skipped (delete the folder "
                    "to train it again)", output_dir)
        return metrics
    if metrics.get("config_sha1") in finished_fingerprints(cfg):
        return metrics
    keep_hydra_files(output_dir, restore=True)  # Hydra has just written the rejected config over the run's
    raise ConfigError(f"{output_dir} already holds the results of a run with another config; choose another "
                      "folder (name=..., hydra.sweep.dir=...) or remove it")


def checkpoint_to_resume(output_dir: Path, cfg: DictConfig) -> Path | None:
    """``checkpoints/last.ckpt`` of an interrupted run of this very config in ``output_dir`` (its
    ``run_state.json`` holds the config fingerprint), None to start from scratch (``resume=false``, no
    checkpoint, or a checkpoint from before run states existed); an interrupted run of another config there is
    a ConfigError."""
    last = output_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return None
    if not cfg.get("resume", True):
        return _set_aside(last, "resume=false")
    try:
        state = json.loads((output_dir / RUN_STATE).read_text())
    except (OSError, json.JSONDecodeError):
        return _set_aside(last, f"no readable {RUN_STATE} says which config it belongs to")
    if state.get("config_sha1") in {config_fingerprint(cfg), config_fingerprint(cfg, "v2")}:
        try:
            # Memory-mapped: only the epoch is read here (Lightning loads the whole checkpoint next).
            epoch = torch.load(last, map_location="cpu", weights_only=False, mmap=True)["epoch"]
        except Exception as error:  # killed while it was being written
            return _set_aside(last, f"it is unreadable ({error})")
        log.info("resuming from %s (after epoch %s)", last, epoch)
        print(f"ece-train: resuming {output_dir} from {last.name} (after epoch {epoch})")
        return last
    keep_hydra_files(output_dir, restore=True)
    raise ConfigError(f"{output_dir} holds an interrupted run of another config ({last}); choose another folder "
                      "(name=..., hydra.sweep.dir=...), remove it, or pass resume=false to train from scratch there")


def unused_name(path: Path, pattern: str) -> Path:
    """The first ``pattern.format(n)`` (n = 1, 2, ...) beside ``path`` that does not exist yet."""
    count = 1
    while (candidate := path.with_name(pattern.format(count))).exists():
        count += 1
    return candidate


def _set_aside(last: Path, why: str) -> None:
    """Move a checkpoint that will not be resumed out of the way (a later start must not take it for this
    run's), keeping it: ``last.not-resumed-<n>.ckpt``."""
    kept = unused_name(last, "last.not-resumed-{}.ckpt")
    last.rename(kept)
    log.warning("%s not resumed (%s): training from scratch; it is kept as %s", last, why, kept.name)
    return None


def keep_interrupted_csv_log(output_dir: Path) -> None:
    """Lightning's CSV logger deletes an existing ``metrics.csv`` when it starts: keep the interrupted run's
    rows as ``csv/metrics.interrupted-<n>.csv`` (the resumed run logs the epochs from the checkpoint on)."""
    log_file = output_dir / "csv" / "metrics.csv"
    if log_file.is_file():
        kept = unused_name(log_file, "metrics.interrupted-{}.csv")
        log_file.rename(kept)
        log.info("the interrupted run's CSV log is kept as %s", kept)


def keep_hydra_files(output_dir: Path, restore: bool = False) -> None:
    """Copy the run's ``.hydra`` files to ``*.completed.yaml`` (or, with ``restore``, back)."""
    folder = output_dir / ".hydra"
    for name in HYDRA_FILES:
        kept = folder / name.replace(".yaml", ".completed.yaml")
        source, target = (kept, folder / name) if restore else (folder / name, kept)
        if source.is_file():
            shutil.copyfile(source, target)


def remove_empty_run_dir(output_dir: Path) -> None:
    """A run rejected before it started leaves no output folder behind (only Hydra's own files were there)."""
    if output_dir.is_dir() and {p.name for p in output_dir.iterdir()} <= {".hydra", "train.log"}:
        shutil.rmtree(output_dir, ignore_errors=True)
