"""`ece-train`: one training run, or a multirun sweep with `-m`, from conf/train.yaml.

Each run trains, tests with the final weights and writes ``metrics.json`` (DESIGN.md's run-output
contract) next to ``checkpoints/last.ckpt``, the composed config in ``.hydra/`` and the CSV log.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from ..config import CONFIG_DIR, ConfigError, apply_raw_root, validate_config
from ..data.readers import DatasetError
from ..io import atomic_write_json
from ..launchers import check_launch, check_spawn_logging
from ..logging_setup import build_loggers, finish_wandb

log = logging.getLogger("ece_lightning.train")


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_run(cfg: DictConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    """The LightningModule and DataModule a validated config names."""
    from ..tasks import TASKS

    module_cls, datamodule_cls = TASKS[cfg.task.name]
    task = _plain(cfg.task)
    task.pop("name")
    # Every other key of the task config is an argument of its module (postprocess, loss_weights, ...).
    module = module_cls(model=_plain(cfg.model), loss=_plain(cfg.loss), optimizer=_plain(cfg.optimizer),
                        speed=_plain(cfg.get("speed")), **task)
    dataset = _plain(cfg.dataset)
    dataset.pop("exhaustive_test", None)
    needs_pixels = any(getattr(m, "requires_pixels", False) for m in module.modules())
    datamodule = datamodule_cls(**dataset, augment=_plain(cfg.get("augment")), pixel_ids=needs_pixels,
                                loader_seed=int(cfg.seed))
    return module, datamodule


def _config_choice(group: str) -> str | None:
    """The option picked for a config group (``loss=ece_exhaustive`` -> "ece_exhaustive"), when Hydra runs."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return HydraConfig.get().runtime.choices.get(group)
    except ValueError:  # composed outside a Hydra run (tests, notebooks)
        return None


def run_metrics(cfg: DictConfig, trainer: pl.Trainer, test_results: dict[str, float], wall_s: float,
                datamodule: pl.LightningDataModule, fit_results: dict[str, Any] | None = None) -> dict[str, Any]:
    """The flat ``metrics.json`` object."""
    metrics: dict[str, Any] = {
        "dataset": cfg.dataset.name,
        "task": cfg.task.name,
        "model": cfg.model.name,
        "loss": _config_choice("loss") or cfg.loss.name,
        "sparsity": float(cfg.sparsity),
        "seed": int(cfg.seed),
        "epochs": int(trainer.current_epoch),
        "steps": int(trainer.global_step),
        "wall_s": round(wall_s, 2),
        "name": cfg.name,
        "exhaustive_test": bool(cfg.dataset.get("exhaustive_test", True)),
    }
    for split, (annotated, total) in getattr(datamodule, "annotated_objects", {}).items():
        metrics[f"objects/{split}_annotated"] = annotated
        metrics[f"objects/{split}_total"] = total
    # The last validation and training-epoch values (trainer.test() replaces the trainer's callback metrics).
    for key, value in (trainer.callback_metrics if fit_results is None else fit_results).items():
        if key.startswith(("val/", "train/loss_epoch")):
            metrics[key] = float(value)
    metrics.update({key: float(value) for key, value in test_results.items()})
    return metrics


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one run; returns (and writes) its metrics. Loggers are closed even on failure."""
    apply_raw_root(cfg)
    validate_config(cfg)
    check_launch(cfg.trainer, *_hydra_launch())
    check_spawn_logging(cfg.trainer, cfg.get("logger"))
    output_dir = Path(cfg.paths.output_dir)
    done = completed_run(output_dir, cfg)
    if done is not None:
        log.info("run %s already finished in %s (metrics.json of the same config): skipped", cfg.name, output_dir)
        print(f"ece-train: {output_dir} already holds this run's results; skipped")
        return done
    resume_from = checkpoint_to_resume(output_dir, cfg)
    log.info("run %s: dataset=%s task=%s loss=%s sparsity=%s seed=%s -> %s", cfg.name, cfg.dataset.name,
             cfg.task.name, cfg.loss.name, cfg.sparsity, cfg.seed, output_dir)
    started = time.perf_counter()
    pl.seed_everything(int(cfg.seed), workers=True)
    module, datamodule = build_run(cfg)
    # Read (and on first use prepare) the dataset before any logger starts: bad data fails fast and cleanly.
    datamodule.setup("fit")
    preview = int((cfg.get("augment") or {}).get("preview", 0) or 0)
    if preview:
        from ..data.preview import preview_grid

        path = preview_grid(datamodule.datasets["train"], preview, output_dir / "augment_preview.png")
        log.info("augmentation preview of %d training samples -> %s (no training)", preview, path)
        print(f"augmentation preview: {path}")
        return {}
    loss_entry = _config_choice("loss") or cfg.loss.name  # elr_asym, not elr: the entries differ
    tags = [f"dataset:{cfg.dataset.name}", f"task:{cfg.task.name}", f"loss:{loss_entry}",
            f"sparsity:{cfg.sparsity}", *list(cfg.get("tags") or [])]
    with gpu_claim(cfg) as gpus:
        failed = True
        try:
            if resume_from is not None:
                _keep_interrupted_csv_log(output_dir)
            loggers = build_loggers(cfg.get("logger"), tags)
            for logger in loggers:
                logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "loss_entry": loss_entry})
            callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()
                         if isinstance(c, DictConfig) and "_target_" in c]
            devices = {"devices": gpus} if gpus is not None else {}
            trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks,
                                                          **devices)
            atomic_write_json(output_dir / RUN_STATE, {"config_sha1": config_fingerprint(cfg)})
            _keep_hydra_files(output_dir)  # so a later run of another config here can put them back
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
            fit_results = dict(trainer.callback_metrics)
            test_results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
            metrics = run_metrics(cfg, trainer, test_results, time.perf_counter() - started, datamodule, fit_results)
            metrics["config_sha1"] = config_fingerprint(cfg)
            _keep_hydra_files(output_dir)
            atomic_write_json(output_dir / "metrics.json", metrics)
            summary = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith("test/"))
            log.info("finished in %.1f s: %s", metrics["wall_s"], summary)
            failed = False
            return metrics
        finally:
            finish_wandb(failed)


def _hydra_launch() -> tuple[bool, str | None]:
    """(whether this job is part of a multirun, the launcher's target) when Hydra runs it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        hydra_cfg = HydraConfig.get()
    except ValueError:
        return False, None
    return hydra_cfg.mode == RunMode.MULTIRUN, hydra_cfg.launcher.get("_target_")


LEGACY_MODEL_CHECKPOINT = {"_target_": "pytorch_lightning.callbacks.ModelCheckpoint",
                           "dirpath": "<paths.output_dir>/checkpoints", "save_last": True, "save_top_k": 0}


def config_fingerprint(cfg: DictConfig, legacy: bool = False) -> str:
    """SHA-1 of what decides a run's results: the resolved config with every ``paths`` entry replaced by its
    name (so the output folder, the datasets folder or the cache do not count), without ``logger``, ``tags``,
    the loader's process settings, ``resume``, ``gpu_pool`` and the checkpoint and progress-bar callbacks.
    ``legacy``: the fingerprint the same config had before resuming existed (its checkpoint settings counted).
    """
    import copy
    import hashlib

    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        for key in list(cfg.get("paths") or {}):
            cfg.paths[key] = f"<paths.{key}>"
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in ("paths", "logger", "tags", "resume", "gpu_pool"):
        plain.pop(key, None)
    callbacks = plain.get("callbacks") or {}
    if legacy:  # the checkpoint settings of runs finished before resuming existed (they do not change results)
        if "model_checkpoint" in callbacks:
            callbacks["model_checkpoint"] = dict(LEGACY_MODEL_CHECKPOINT)
    else:
        for key in ("model_checkpoint", "progress_bar"):  # how often state is saved or shown, not what is learnt
            callbacks.pop(key, None)
    for key in ("num_workers", "pin_memory", "persistent_workers"):
        plain.get("dataset", {}).pop(key, None)
    return hashlib.sha1(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


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
    if metrics.get("config_sha1") in (config_fingerprint(cfg), config_fingerprint(cfg, legacy=True)):
        return metrics
    _keep_hydra_files(output_dir, restore=True)  # Hydra has just written the rejected config over the run's
    raise ConfigError(f"{output_dir} already holds the results of a run with another config; choose another "
                      "folder (name=..., hydra.sweep.dir=...) or remove it")


def gpu_claim(cfg: DictConfig):
    """A context holding this job's GPUs from ``gpu_pool`` (their indices; see ``gpu_pool.claim_gpus``), or
    yielding None when there is no pool."""
    from contextlib import nullcontext

    from ..gpu_pool import claim_gpus, pool_ids
    from ..launchers import requested_devices

    pool = cfg.get("gpu_pool")
    if pool is None:
        return nullcontext(None)
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator not in ("gpu", "cuda", "auto"):
        raise ConfigError(f"gpu_pool hands out GPUs but trainer.accelerator={accelerator}; use trainer=gpu (or drop "
                          "gpu_pool)")
    count = requested_devices(cfg.trainer)
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if (count is None or count > 1) and "spawn" not in strategy:
        raise ConfigError(f"gpu_pool with trainer.devices={cfg.trainer.get('devices')!r} and trainer.strategy={strategy}: "
                          "Lightning would re-launch the command for every extra GPU and each copy would claim GPUs "
                          "again; use trainer.strategy=ddp_spawn, one GPU per job, or hydra/launcher=slurm")
    if count is None:
        raise ConfigError(f"with gpu_pool, trainer.devices must say how many GPUs a job takes (got "
                          f"{cfg.trainer.get('devices')!r})")
    ids = pool_ids(pool if isinstance(pool, str) else list(pool))
    log.info("waiting for %d GPU(s) of the pool %s", count, ids)
    return claim_gpus(count, ids)


RUN_STATE = "run_state.json"


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
    if state.get("config_sha1") == config_fingerprint(cfg):
        try:
            # Memory-mapped: only the epoch is read here (Lightning loads the whole checkpoint next).
            epoch = torch.load(last, map_location="cpu", weights_only=False, mmap=True)["epoch"]
        except Exception as error:  # killed while it was being written
            return _set_aside(last, f"it is unreadable ({error})")
        log.info("resuming from %s (after epoch %s)", last, epoch)
        print(f"ece-train: resuming {output_dir} from {last.name} (after epoch {epoch})")
        return last
    _keep_hydra_files(output_dir, restore=True)
    raise ConfigError(f"{output_dir} holds an interrupted run of another config ({last}); choose another folder "
                      "(name=..., hydra.sweep.dir=...), remove it, or pass resume=false to train from scratch there")


def _unused_name(path: Path, pattern: str) -> Path:
    """The first ``pattern.format(n)`` (n = 1, 2, ...) beside ``path`` that does not exist yet."""
    count = 1
    while (candidate := path.with_name(pattern.format(count))).exists():
        count += 1
    return candidate


def _set_aside(last: Path, why: str) -> None:
    """Move a checkpoint that will not be resumed out of the way (a later start must not take it for this
    run's), keeping it: ``last.not-resumed-<n>.ckpt``."""
    kept = _unused_name(last, "last.not-resumed-{}.ckpt")
    last.rename(kept)
    log.warning("%s not resumed (%s): training from scratch; it is kept as %s", last, why, kept.name)
    return None


def _keep_interrupted_csv_log(output_dir: Path) -> None:
    """Lightning's CSV logger deletes an existing ``metrics.csv`` when it starts: keep the interrupted run's
    rows as ``csv/metrics.interrupted-<n>.csv`` (the resumed run logs the epochs from the checkpoint on)."""
    log_file = output_dir / "csv" / "metrics.csv"
    if log_file.is_file():
        kept = _unused_name(log_file, "metrics.interrupted-{}.csv")
        log_file.rename(kept)
        log.info("the interrupted run's CSV log is kept as %s", kept)


HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def _keep_hydra_files(output_dir: Path, restore: bool = False) -> None:
    """Copy the run's ``.hydra`` files to ``*.completed.yaml`` (or, with ``restore``, back)."""
    folder = output_dir / ".hydra"
    for name in HYDRA_FILES:
        kept = folder / name.replace(".yaml", ".completed.yaml")
        source, target = (kept, folder / name) if restore else (folder / name, kept)
        if source.is_file():
            shutil.copyfile(source, target)


def _remove_empty_run_dir(output_dir: Path) -> None:
    """A run rejected before it started leaves no output folder behind (only Hydra's own files were there)."""
    if output_dir.is_dir() and {p.name for p in output_dir.iterdir()} <= {".hydra", "train.log"}:
        shutil.rmtree(output_dir, ignore_errors=True)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    torch.set_float32_matmul_precision("high")
    try:
        metrics = train(cfg)
    except (ConfigError, DatasetError) as error:
        print(f"ece-train: {error}", file=sys.stderr)
        _remove_empty_run_dir(Path(cfg.paths.output_dir))
        raise SystemExit(2) from None
    return metrics.get("test/dice")


if __name__ == "__main__":
    main()
