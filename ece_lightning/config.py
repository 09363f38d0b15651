"""Validation of a composed run config: every problem is reported with the key that holds it and
what would be valid, before any data is generated or any model built."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"

TOP_LEVEL_KEYS = frozenset({
    "name", "sparsity", "seed", "optimizer", "tags", "dataset", "task", "model", "loss", "trainer", "logger",
    "callbacks", "paths", "augment", "speed", "resume", "gpu_pool",
})
SPEED_KEYS = {"channels_last": bool, "compile": bool, "compile_mode": str}


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names each offending key."""


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check(errors: list[str], condition: bool, message: str) -> None:
    if not condition:
        errors.append(message)


def _registry_check(errors: list[str], key: str, value: Any, valid: Iterable[str]) -> None:
    valid = sorted(valid)
    _check(errors, value in valid, f"{key}={value!r} is not registered; valid: {', '.join(valid)}")


def apply_raw_root(cfg: DictConfig) -> None:
    """``paths.raw=<dir>`` points the dataset at a raw folder of the user's (instead of ``dataset.root``)."""
    raw = (cfg.get("paths") or {}).get("raw")
    if raw:
        with open_dict(cfg):
            cfg.dataset.root = str(raw)


def _check_detection_task(errors: list[str], task: DictConfig) -> None:
    for key, value in (task.get("loss_weights") or {}).items():
        if key == "normalize":
            _check(errors, value in ("cells", "groups"), f"task.loss_weights.normalize={value!r} must be cells or groups")
            continue
        _check(errors, key in ("lambda_objects", "lambda_background", "lambda_box"),
               f"task.loss_weights.{key} is unknown; valid: lambda_objects, lambda_background, lambda_box, normalize")
        _check(errors, _is_number(value) and value >= 0, f"task.loss_weights.{key}={value!r} must be a number >= 0")
    post = task.get("postprocess") or {}
    unknown = sorted(set(post) - {"score_threshold", "nms_iou", "max_detections"})
    _check(errors, not unknown, f"task.postprocess key(s) {', '.join(unknown)} unknown for detection; valid: "
           "score_threshold, nms_iou, max_detections")
    limit = post.get("max_detections", 1000)
    _check(errors, _is_int(limit) and limit >= 0, f"task.postprocess.max_detections={limit!r} must be an integer "
           ">= 0 (0 = no limit)")
    for key in ("score_threshold", "nms_iou"):
        value = post.get(key, 0.5)
        _check(errors, _is_number(value) and 0 <= value <= 1, f"task.postprocess.{key}={value!r} must lie in [0, 1]")
    metrics = task.get("metrics") or {}
    unknown = sorted(set(metrics) - {"iou_threshold", "point_radius"})
    _check(errors, not unknown, f"task.metrics key(s) {', '.join(unknown)} unknown; valid: iou_threshold, point_radius")
    iou = metrics.get("iou_threshold", 0.5)
    _check(errors, _is_number(iou) and 0 < iou <= 1, f"task.metrics.iou_threshold={iou!r} must lie in (0, 1]")
    radius = metrics.get("point_radius", 0.0)
    _check(errors, _is_number(radius) and radius >= 0,
           f"task.metrics.point_radius={radius!r} must be a number >= 0 (pixels; 0 = no point F1)")


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError listing every invalid key of a composed ``train.yaml`` config."""
    from .data.sources import SOURCES
    from .inference.postprocess import METHODS
    from .losses import LOSSES
    from .models import MODELS
    from .tasks import TASKS

    errors: list[str] = []
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS)
    _check(errors, not unknown, f"unknown top-level key(s) {', '.join(unknown)}; valid: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    for group in ("dataset", "task", "model", "loss", "trainer"):
        if not isinstance(cfg.get(group), DictConfig):
            errors.append(f"{group} is missing: choose one with `{group}=<name>` (see conf/{group}/)")
    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors))

    sparsity = cfg.get("sparsity")
    _check(errors, _is_number(sparsity) and 0.0 < sparsity <= 1.0,
           f"sparsity={sparsity!r} is out of range: it must lie in (0, 1], the fraction of annotated "
           "objects kept (1.0 = exhaustive)")
    seed = cfg.get("seed")
    _check(errors, _is_int(seed) and seed >= 0, f"seed={seed!r} must be an integer >= 0")

    optimizer = cfg.get("optimizer") or {}
    lr = optimizer.get("lr")
    _check(errors, _is_number(lr) and lr > 0, f"optimizer.lr={lr!r} must be a number > 0")
    betas = optimizer.get("betas")
    _check(errors, betas is not None and len(betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in betas),
           f"optimizer.betas={OmegaConf.to_container(betas) if betas is not None else None!r} must be two "
           "numbers in [0, 1)")
    weight_decay = optimizer.get("weight_decay", 0.0)
    _check(errors, _is_number(weight_decay) and weight_decay >= 0,
           f"optimizer.weight_decay={weight_decay!r} must be a number >= 0")

    _registry_check(errors, "task.name", cfg.task.get("name"), TASKS)
    _registry_check(errors, "model.name", cfg.model.get("name"), MODELS)
    _registry_check(errors, "loss.name", cfg.loss.get("name"), LOSSES)
    _registry_check(errors, "dataset.source", cfg.dataset.get("source"), SOURCES)
    if cfg.dataset.get("source") == "prepared":
        from .data.readers import FORMATS
        from .data.splits import METHODS as SPLIT_METHODS
        from .data.splits import UNITS as SPLIT_UNITS

        _registry_check(errors, "dataset.format", cfg.dataset.get("format"), FORMATS)
        split = cfg.dataset.get("split") or {}
        _check(errors, split.get("method", "given") in SPLIT_METHODS,
               f"dataset.split.method={split.get('method')!r} must be one of {', '.join(SPLIT_METHODS)}")
        _check(errors, split.get("by", "image") in SPLIT_UNITS,
               f"dataset.split.by={split.get('by')!r} must be one of {', '.join(SPLIT_UNITS)}")
    speed = cfg.get("speed") or {}
    for key in sorted(set(speed.keys()) - set(SPEED_KEYS)):
        errors.append(f"unknown key speed.{key}; valid: {', '.join(sorted(SPEED_KEYS))}")
    for key, kind in SPEED_KEYS.items():
        if key in speed:
            _check(errors, isinstance(speed[key], kind), f"speed.{key}={speed[key]!r} must be a {kind.__name__}")
    from .modules.base import COMPILE_MODES

    if isinstance(speed.get("compile_mode"), str):
        _check(errors, speed.compile_mode in COMPILE_MODES,
               f"speed.compile_mode={speed.compile_mode!r} must be one of {', '.join(COMPILE_MODES)}")
    for key in ("pin_memory", "persistent_workers"):
        value = cfg.dataset.get(key)
        _check(errors, value is None or isinstance(value, bool),
               f"dataset.{key}={value!r} must be true, false or null (automatic)")
    _check(errors, not (cfg.dataset.get("persistent_workers") is True and not cfg.dataset.get("num_workers")),
           "dataset.persistent_workers=true needs dataset.num_workers >= 1")
    postprocess = cfg.task.get("postprocess") or {}
    if "method" in postprocess:
        _registry_check(errors, "task.postprocess.method", postprocess.method, METHODS)

    dataset = cfg.dataset
    for key in ("batch_size", "num_train", "num_val", "num_test", "image_size"):
        if key in dataset:
            value = dataset[key]
            _check(errors, _is_int(value) and value >= 1, f"dataset.{key}={value!r} must be an integer >= 1")
    num_workers = dataset.get("num_workers", 0)
    _check(errors, _is_int(num_workers) and num_workers >= 0,
           f"dataset.num_workers={num_workers!r} must be an integer >= 0")

    model = cfg.model
    for key in ("base_channels", "depth", "in_channels"):
        if key in model:
            value = model[key]
            _check(errors, _is_int(value) and value >= 1, f"model.{key}={value!r} must be an integer >= 1")
    if cfg.task.get("name") == "segmentation":
        classes = model.get("num_classes")
        _check(errors, _is_int(classes) and classes >= 2,
               f"model.num_classes={classes!r} must be an integer >= 2 (background + foreground classes)")
    for key in ("crop_size", "crops_per_epoch", "eval_tile"):
        value = dataset.get(key)
        _check(errors, value is None or (_is_int(value) and value >= 1),
               f"dataset.{key}={value!r} must be an integer >= 1 (or null)")
    task_name, model_name = cfg.task.get("name"), model.get("name")
    if task_name in TASKS and model_name in MODELS:
        model_task = getattr(MODELS[model_name], "task", None)
        _check(errors, model_task == task_name,
               f"model.name={model_name!r} is a {model_task} model but task.name={task_name!r}; use "
               + " or ".join(f"model={n}" for n in sorted(MODELS) if getattr(MODELS[n], "task", None) == task_name))
    if model_name == "yollo":
        depth = model.get("depth")
        _check(errors, _is_int(depth) and 1 <= depth <= 5, f"model.depth={depth!r} must be an integer in 1..5 "
               "(the number of max pools; stride 2**depth)")
        anchor = model.get("anchor", 16.0)
        _check(errors, _is_number(anchor) and anchor > 0, f"model.anchor={anchor!r} must be a number > 0 (pixels)")
    if task_name == "detection":
        _check_detection_task(errors, cfg.task)
    depth = model.get("depth")
    if model_name in ("unet", "yollo") and _is_int(depth) and depth >= 1:
        for key in ("image_size", "crop_size", "eval_tile"):
            size = dataset.get(key)
            if _is_int(size) and size >= 1:
                _check(errors, size % 2**depth == 0,
                       f"dataset.{key}={size} must be divisible by 2**model.depth = {2**depth} "
                       f"(e.g. {max(2**depth, size - size % 2**depth)})")
    root = dataset.get("root")
    if root is not None:
        _check(errors, Path(root).is_dir(),
               f"dataset.root={root} does not exist: put the {dataset.get('name')} data there or point "
               "ECE_DATASETS (or paths.datasets_dir) at the folder that holds it")

    augment = cfg.get("augment") or {}
    for name in ("blur", "noise", "rotate90", "hflip", "vflip", "transpose", "stain"):
        p = (augment.get(name) or {}).get("p")
        _check(errors, p is None or (_is_number(p) and 0 <= p <= 1), f"augment.{name}.p={p!r} must be in [0, 1]")
    for name, key in (("noise", "std"), ("stain", "sigma"), ("stain", "bias")):
        value = (augment.get(name) or {}).get(key)
        _check(errors, value is None or (_is_number(value) and value >= 0),
               f"augment.{name}.{key}={value!r} must be a number >= 0")
    preview = augment.get("preview", 0)
    _check(errors, _is_int(preview) and preview >= 0, f"augment.preview={preview!r} must be an integer >= 0")

    max_epochs = cfg.trainer.get("max_epochs")
    _check(errors, _is_int(max_epochs) and max_epochs >= 1, f"trainer.max_epochs={max_epochs!r} must be an integer >= 1")

    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors))
