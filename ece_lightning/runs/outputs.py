"""The run-output contract: the flat ``metrics.json`` object every training run writes (docs/architecture.md: at least
dataset, task, model, loss, sparsity, seed, epochs, wall_s and the test metrics that apply)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig


def config_choice(group: str) -> str | None:
    """The option picked for a config group (``loss=ece_exhaustive`` -> "ece_exhaustive"), when Hydra runs."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return HydraConfig.get().runtime.choices.get(group)
    except ValueError:  # composed outside a Hydra run (tests, notebooks)
        return None


def loss_entry(cfg: DictConfig) -> str:
    """The loss config entry of a run (``elr_asym``; several entries share ``loss.name`` ``elr``)."""
    return config_choice("loss") or cfg.loss.name


def run_metrics(cfg: DictConfig, trainer: pl.Trainer, test_results: dict[str, float], wall_s: float,
                datamodule: pl.LightningDataModule, fit_results: dict[str, Any] | None = None) -> dict[str, Any]:
    """The flat ``metrics.json`` object of a finished run."""
    metrics: dict[str, Any] = {
        "dataset": cfg.dataset.name,
        "task": cfg.task.name,
        "model": cfg.model.name,
        "loss": loss_entry(cfg),
        "sparsity": float(cfg.sparsity),
        "seed": int(cfg.seed),
        "epochs": int(trainer.current_epoch),
        "steps": int(trainer.global_step),
        "wall_s": round(wall_s, 2),
        "name": cfg.name,
        "exhaustive_test": bool(cfg.dataset.get("exhaustive_test", True)),
    }
    if cfg.dataset.get("point_labels") is not None:  # trained from points (ece-report: loss "<loss>+points")
        metrics["labels"] = "points"
    for split, (annotated, total) in getattr(datamodule, "annotated_objects", {}).items():
        metrics[f"objects/{split}_annotated"] = annotated
        metrics[f"objects/{split}_total"] = total
    # The last validation and training-epoch values (trainer.test() replaces the trainer's callback metrics).
    for key, value in (trainer.callback_metrics if fit_results is None else fit_results).items():
        if key.startswith(("val/", "train/loss_epoch", "train/pseudo_share")):
            metrics[key] = float(value)
    module = trainer.lightning_module
    if getattr(module, "auto_threshold", False):  # score_threshold auto: the one the last validation chose
        metrics["score_threshold"] = module.score_threshold()
    metrics.update({key: float(value) for key, value in test_results.items()})
    return metrics
