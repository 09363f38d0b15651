"""Evaluating a trained checkpoint on a dataset split (``ece-eval``): the run's own test split (the same numbers as
its ``metrics.json``), another split, or another dataset altogether (cross-dataset generalisation).

The loop is the test loop of the task module (its evaluation loss, post-processing and metrics, in eval mode, no
gradients), so the run's own test split gives exactly the ``test/*`` values training wrote; it also keeps one
record per source image (counts summed over the image's tiles) for ``per_image.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ..config import point_label_errors
from ..errors import ConfigError, config_key
from ..metrics import WeightedMean

SPLITS = ("test", "val", "train", "all")


@dataclass
class Evaluation:
    """What ``evaluate`` measured: ``metrics`` (``test/*`` keys, as a training run's), ``per_image`` (one row per
    source image) and ``picture`` (predictions over images spread across the split, RGB uint8)."""

    metrics: dict[str, float]
    per_image: pd.DataFrame
    picture: np.ndarray | None
    #: detection on labels that are not exhaustive: counts per score threshold (``analysis.thresholds``)
    threshold_counts: pd.DataFrame | None = None


def load_checkpoint_module(checkpoint: str | Path) -> pl.LightningModule:
    """The task module of an ``ece-train`` checkpoint (its task told by its model), weights loaded, in eval mode on
    the CPU; a file that is not such a checkpoint is a ConfigError naming it."""
    from ..models import MODELS
    from ..modules import TASKS
    from .checkpoints import read_checkpoint

    path = Path(checkpoint)
    state, hparams = read_checkpoint(path, ConfigError)
    task = getattr(MODELS.get(hparams["model"]["name"]), "task", None)
    options = {k: v for k, v in hparams.items() if not k.startswith("_")}
    options["speed"] = {**(options.get("speed") or {}), "compile": False}  # no compile step for one pass
    module = TASKS.create(task, options)
    try:
        module.load_state_dict(state["state_dict"])
    except RuntimeError as error:
        raise ConfigError(f"checkpoint={path}: its weights do not fit its own model ({error})") from None
    return module.eval()


def evaluation_images(datamodule: pl.LightningDataModule, split: str) -> tuple[Any, list[str]]:
    """The evaluation tiles of ``split`` (``all``: every split) and the ids of their source images."""
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} must be one of {', '.join(SPLITS)}")
    datamodule.setup("test")
    return datamodule.evaluation_dataset(split)


def evaluate(module: pl.LightningModule, dataset: Any, image_ids: list[str], batch_size: int = 8,
             pictures: int = 4) -> Evaluation:
    """Run ``module`` over ``dataset`` as its test loop does; see the module docstring."""
    from ..analysis.qualitative import spread_indices
    from ..drawing import side_by_side

    metrics = module.make_metrics("test/")
    loss = WeightedMean()
    records: list[dict[str, Any]] = []
    if hasattr(module, "test_threshold_counts"):
        module.test_threshold_counts(reset=True)
    module.eval()
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size if dataset.uniform else 1, shuffle=False):
            batch_records: list[dict[str, Any]] = []
            module.evaluate_batch(batch, metrics, loss, records=batch_records)
            for index, record in zip(batch["index"].tolist(), batch_records):
                records.append({"image": image_ids[index], **record})
    results = {k: float(v) for k, v in module.test_results(metrics.compute()).items()}
    results["test/loss"] = float(loss.compute())
    picture = None
    if pictures and len(dataset):
        drawn = []
        for index in spread_indices(len(dataset), pictures):
            sample = {key: torch.as_tensor(value)[None] for key, value in dataset[index].items()}
            drawn += module.draw_predictions(sample, 1)
        picture = side_by_side(drawn)
    counts = module.test_threshold_counts(reset=True) if hasattr(module, "test_threshold_counts") else None
    return Evaluation(results, per_image_table(records, module.task), picture, counts)


def per_image_table(records: list[dict[str, Any]], task: str) -> pd.DataFrame:
    """Per-tile records summed per source image, with the ratios derived from the summed counts."""
    from ..metrics.core import aji_from_counts, dice_from_counts
    from ..metrics.matching import detection_scores

    frame = pd.DataFrame(records)
    if frame.empty:
        return frame
    summed = frame.groupby("image", sort=False).sum(numeric_only=True).reset_index()
    summed.insert(1, "tiles", frame.groupby("image", sort=False).size().to_numpy())
    if task == "segmentation":
        summed["dice"] = [dice_from_counts(i, t) for i, t in zip(summed["dice_intersection"], summed["dice_total"])]
        summed["aji"] = [aji_from_counts(c, u) for c, u in zip(summed["aji_intersection"], summed["aji_union"])]
        summed["fg_ratio"] = summed["predicted_pixels"] / summed["true_pixels"].where(summed["true_pixels"] > 0)
    else:
        scores = [detection_scores(tp, fp, fn) for tp, fp, fn in zip(summed["tp"], summed["fp"], summed["fn"])]
        for key in ("f1", "precision", "recall"):
            summed[key] = [s[key] for s in scores]
    return summed


def run_dir_of(checkpoint: Path) -> Path | None:
    """The ece-train run folder a checkpoint lies in (``<run>/checkpoints/<file>``), None when it lies elsewhere."""
    run_dir = checkpoint.resolve().parent.parent
    return run_dir if (run_dir / ".hydra" / "config.yaml").is_file() else None


def evaluate_checkpoint(cfg: Any) -> tuple[Path, Evaluation]:
    """``ece-eval``: evaluate ``cfg.checkpoint`` on ``cfg.dataset`` (or the run's own) split ``cfg.split`` and write
    ``metrics.json``, ``per_image.csv`` and ``predictions.png`` to the output folder, which is only made once
    everything has been read and evaluated (a bad checkpoint, config or dataset leaves nothing behind)."""
    from omegaconf import OmegaConf

    from ..io import atomic_save_image, atomic_write_json, atomic_write_text
    from .assembly import input_multiple, load_run_config, plain

    checkpoint = Path(str(cfg.checkpoint))
    module = load_checkpoint_module(checkpoint)
    if cfg.get("postprocess"):
        with config_key("postprocess"):
            module.override_postprocess(plain(cfg.postprocess))
    run_dir = run_dir_of(checkpoint)
    run_cfg = load_run_config(run_dir) if run_dir is not None else None
    if cfg.get("dataset") is not None:
        dataset_cfg = plain(cfg.dataset)
    elif run_cfg is not None:
        dataset_cfg = OmegaConf.to_container(run_cfg.dataset, resolve=True)
    else:
        raise ConfigError(f"dataset= is required: {checkpoint} is not inside an ece-train run folder, so the dataset "
                          "it was trained on is unknown")
    dataset_cfg.update(sparsity=float(cfg.sparsity), sparsify_seed=int(cfg.seed))
    point_problems = point_label_errors(module.task, dataset_cfg.get("point_labels"),
                                        getattr(module, "metrics_cfg", {}).get("point_radius"),
                                        getattr(module, "fixed_box_size", None))
    if point_problems:
        raise ConfigError(*point_problems, listing=True)
    batch_size = dataset_cfg.get("batch_size", 8) if cfg.get("batch_size") is None else cfg.batch_size
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be an integer >= 1")
    datamodule = _datamodule(dataset_cfg, cfg.seed, input_multiple(module) or 1)
    dataset, image_ids = evaluation_images(datamodule, str(cfg.split))
    if hasattr(module, "exhaustive_test"):  # the evaluated data decides what a detection test reports
        module.exhaustive_test = bool(dataset_cfg.get("exhaustive_test", True))
    evaluation = evaluate(module, dataset, image_ids, batch_size=int(batch_size), pictures=int(cfg.pictures))

    trained = trained_with(run_dir, run_cfg)
    output = Path(str(cfg.output)) if cfg.get("output") else (
        Path(str(cfg.paths.log_dir)) / "eval" / (run_dir.name if run_dir else checkpoint.stem)
        / f"{dataset_cfg['name']}-{cfg.split}{_postprocess_suffix(cfg.get('postprocess'))}")
    # the settings in use: a detector's threshold chosen in training (auto) is written as the number it chose
    postprocess = (module.postprocess_settings() if hasattr(module, "postprocess_settings")
                   else dict(module.postprocess_cfg))
    metrics = {
        "dataset": dataset_cfg["name"], "split": str(cfg.split), "task": module.task,
        "model": module.hparams["model"]["name"],
        "loss": trained.get("loss"), "sparsity": trained.get("sparsity"), "seed": trained.get("seed"),
        "trained_on": trained.get("trained_on"), "checkpoint": str(checkpoint.resolve()), "evaluated_sparsity": float(cfg.sparsity),
        "images": int(len(evaluation.per_image)), "tiles": int(len(dataset)),
        "exhaustive_test": bool(dataset_cfg.get("exhaustive_test", True)), "postprocess": postprocess,
        **({"labels": trained["labels"]} if "labels" in trained else {}),
        **evaluation.metrics,
    }
    atomic_write_json(output / "metrics.json", metrics)
    atomic_write_text(output / "per_image.csv", evaluation.per_image.to_csv(index=False))
    if evaluation.picture is not None:
        atomic_save_image(output / "predictions.png", evaluation.picture)
    if evaluation.threshold_counts is not None:  # labels not exhaustive: exclusive recall against count ratio
        from ..analysis.thresholds import write_recall_vs_count

        write_recall_vs_count(evaluation.threshold_counts, module.score_threshold(), output / "recall_vs_count")
    return output, evaluation


def _postprocess_suffix(overrides: Any) -> str:
    """The default output folder's mark of post-processing overrides (``-min_distance10-min_size20``), so an
    evaluation with other settings never replaces the one with the trained settings."""
    if not overrides:
        return ""
    return "".join(f"-{key}{value}" for key, value in sorted(dict(overrides).items()))


def trained_with(run_dir: Path | None, run_cfg: Any) -> dict[str, Any]:
    """What a run was trained with: dataset, loss (its config entry), sparsity and seed, from its metrics.json
    (or its config while it has none); empty without a run folder."""
    if run_dir is None:
        return {}
    import json

    try:
        finished = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        finished = {}
    trained = {"trained_on": finished.get("dataset", run_cfg.dataset.name),
               "loss": finished.get("loss", run_cfg.loss.name),
               "sparsity": finished.get("sparsity", run_cfg.sparsity), "seed": finished.get("seed", run_cfg.seed)}
    if run_cfg.dataset.get("point_labels") is not None:  # trained from points (ece-report: "<loss>+points")
        trained["labels"] = "points"
    return trained


def _datamodule(dataset_cfg: dict[str, Any], seed: int, input_multiple: int) -> pl.LightningDataModule:
    from ..data.datamodule import InstanceDataModule
    from ..errors import config_key

    with config_key("dataset"):
        return InstanceDataModule(**dataset_cfg, augment=None, loader_seed=int(seed), input_multiple=input_multiple)
