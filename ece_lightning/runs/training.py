"""One training run from a composed config: train, test with the final weights and write ``metrics.json`` next to
``checkpoints/last.ckpt``, the CSV log and ``.hydra/``; finished runs are skipped, interrupted ones resume, and the
W&B run is closed whatever happens."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from ..config import apply_raw_root
from ..io import atomic_write_json
from .assembly import build_callbacks, build_run, build_trainer, plain
from .launch import check_launch, check_spawn_logging, gpu_claim
from .loggers import build_loggers, finish_wandb
from .outputs import loss_entry, run_metrics
from .state import (
    RUN_STATE,
    checkpoint_to_resume,
    completed_run,
    config_fingerprint,
    keep_hydra_files,
    keep_interrupted_csv_log,
)

log = logging.getLogger("ece_lightning.train")


def hydra_launch() -> tuple[bool, str | None]:
    """(whether this job is part of a multirun, the launcher's target) when Hydra runs it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        hydra_cfg = HydraConfig.get()
    except ValueError:
        return False, None
    return hydra_cfg.mode == RunMode.MULTIRUN, hydra_cfg.launcher.get("_target_")


def run_label(cfg: DictConfig) -> str:
    """How a run is named on its progress bar: ``<loss entry> @ <sparsity> seed <seed>``."""
    return f"{loss_entry(cfg)} @ {cfg.sparsity:g} seed {cfg.seed}"


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one run; returns (and writes) its metrics. Loggers are closed even on failure."""
    apply_raw_root(cfg)
    module, datamodule = build_run(cfg)
    check_launch(cfg.trainer, *hydra_launch())
    check_spawn_logging(cfg.trainer, cfg.get("logger"))
    output_dir = Path(cfg.paths.output_dir)
    done = completed_run(output_dir, cfg)
    if done is not None:
        log.info("run %s already finished in %s (metrics.json of the same config): skipped", cfg.name, output_dir)
        print(f"ece-train: {output_dir} already holds this run's results; skipped")
        return done
    resume_from = checkpoint_to_resume(output_dir, cfg)
    log.info("run %s: dataset=%s task=%s loss=%s sparsity=%s seed=%s -> %s", cfg.name, cfg.dataset.name,
             cfg.task.name, loss_entry(cfg), cfg.sparsity, cfg.seed, output_dir)
    started = time.perf_counter()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    # The objects were built once to check the config; build them again after seeding, so the initial weights
    # are those of the seed.
    module, datamodule = build_run(cfg)
    # Read (and on first use prepare) the dataset before any logger starts: bad data fails fast and cleanly.
    datamodule.setup("fit")
    preview = int((cfg.get("augment") or {}).get("preview", 0) or 0)
    if preview:
        from ..drawing import preview_grid

        path = preview_grid(datamodule.datasets["train"], preview, output_dir / "augment_preview.png")
        log.info("augmentation preview of %d training samples -> %s (no training)", preview, path)
        print(f"augmentation preview: {path}")
        return {}
    entry = loss_entry(cfg)  # elr_asym, not elr: the entries differ
    tags = [f"dataset:{cfg.dataset.name}", f"task:{cfg.task.name}", f"loss:{entry}", f"sparsity:{cfg.sparsity}",
            *list(cfg.get("tags") or [])]
    callbacks = build_callbacks(cfg)
    for callback in callbacks:
        if getattr(callback, "description", "") is None:  # the run's progress bar
            callback.description = run_label(cfg)
    with gpu_claim(cfg) as gpus:
        failed = True
        try:
            if resume_from is not None:
                keep_interrupted_csv_log(output_dir)
            loggers = build_loggers(plain(cfg.get("logger")), tags)
            for logger in loggers:
                logger.log_hyperparams({**OmegaConf.to_container(cfg, resolve=True), "loss_entry": entry})
            trainer = build_trainer(cfg, loggers, callbacks, **({"devices": gpus} if gpus is not None else {}))
            atomic_write_json(output_dir / RUN_STATE, {"config_sha1": config_fingerprint(cfg)})
            keep_hydra_files(output_dir)  # so a later run of another config here can put them back
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
            fit_results = dict(trainer.callback_metrics)
            test_results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
            metrics = run_metrics(cfg, trainer, test_results, time.perf_counter() - started, datamodule, fit_results)
            metrics["config_sha1"] = config_fingerprint(cfg)
            keep_hydra_files(output_dir)
            atomic_write_json(output_dir / "metrics.json", metrics)
            summary = ", ".join(f"{k.removeprefix('test/')} {v:.3f}" for k, v in metrics.items()
                                if k.startswith("test/") and k != "test/loss")
            log.info("finished in %.1f s: %s", metrics["wall_s"], summary)
            failed = False
            return metrics
        finally:
            finish_wandb(failed)
