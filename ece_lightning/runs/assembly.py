"""From a composed config to the objects of a run: the task module, the datamodule, the callbacks, the loggers and
the trainer, each through its registry. Building them is what checks the config: every group's values are
checked by the constructors it names, and every problem is reported at once, with its key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from ..config import plain, run_key_errors, size_errors
from ..errors import ConfigError, config_key
from ..registry import check_arguments

T = TypeVar("T")


def _collect(errors: list[str], build: Callable[[], T]) -> T | None:
    try:
        return build()
    except ConfigError as error:
        errors.extend(error.problems)
        return None


def needs_pixel_ids(module: torch.nn.Module | None) -> bool:
    """Whether a loss of ``module`` keeps state per training pixel (ELR): the data must serve pixel ids."""
    return module is not None and any(getattr(m, "requires_pixels", False) for m in module.modules())


def input_multiple(module: torch.nn.Module | None) -> int | None:
    """The side multiple the module's network needs (2**depth: U-Net and YOLLO), None when unknown."""
    net = getattr(module, "net", None)
    return 2 ** net.depth if hasattr(net, "depth") else None


def build_module(cfg: DictConfig) -> pl.LightningModule:
    """The task module (``modules.TASKS``) of a config, from its task, model, loss, optimizer and speed groups."""
    from ..modules import TASKS

    with config_key("task"):
        return TASKS.build(plain(cfg.task), model=plain(cfg.model), loss=plain(cfg.loss),
                           optimizer=plain(cfg.get("optimizer")), scheduler=plain(cfg.get("scheduler")),
                           speed=plain(cfg.get("speed")))


def build_datamodule(cfg: DictConfig, pixel_ids: bool = False, input_multiple: int = 1) -> pl.LightningDataModule:
    """The datamodule of a config's ``dataset`` group (training augmentation from ``augment``; the network's input
    ``multiple`` pads whole evaluation images)."""
    from ..data.datamodule import InstanceDataModule
    from ..data.transforms import check_augment

    augment = plain(cfg.get("augment"))
    with config_key("augment"):
        check_augment(augment)
    with config_key("dataset"):
        return InstanceDataModule(**plain(cfg.dataset), augment=augment, pixel_ids=pixel_ids,
                                  loader_seed=int(cfg.seed), input_multiple=input_multiple)


def build_run(cfg: DictConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    """The LightningModule and DataModule a config names; a ConfigError lists every invalid key."""
    errors = run_key_errors(cfg)
    module = _collect(errors, lambda: build_module(cfg))
    multiple = input_multiple(module)
    datamodule = _collect(errors, lambda: build_datamodule(cfg, needs_pixel_ids(module), multiple or 1))
    errors += size_errors(cfg, multiple)
    if errors:
        raise ConfigError(*errors, listing=True)
    return module, datamodule


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError listing every invalid key of a composed ``train.yaml`` config (without reading data)."""
    build_run(cfg)


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """Every entry of the ``callbacks`` group, each named by its key (``callbacks.CALLBACKS``)."""
    from ..callbacks import CALLBACKS

    callbacks = []
    for name, options in (plain(cfg.get("callbacks")) or {}).items():
        with config_key(f"callbacks.{name}"):
            callbacks.append(CALLBACKS.create(name, options or {}))
    return callbacks


def build_trainer(cfg: DictConfig, loggers: list[Any], callbacks: list[pl.Callback], **overrides: Any) -> pl.Trainer:
    """``pytorch_lightning.Trainer`` with the ``trainer`` group's arguments (a key it does not take is named)."""
    options = {**plain(cfg.trainer), **overrides}
    check_arguments(pl.Trainer, options, prefix="trainer")
    return pl.Trainer(**options, logger=loggers or False, callbacks=callbacks)


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The composed config of a finished or interrupted ``ece-train`` run folder (``.hydra/config.yaml``), with
    its paths resolved as when it ran: the output folder is ``run_dir`` and relative paths start from the folder
    it was started in (``ECE_DATASETS`` and ``ECE_CACHE`` still override)."""
    run_dir = Path(run_dir)
    config_path = run_dir / ".hydra" / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing; {run_dir} is not a finished ece-train run folder")
    cfg = OmegaConf.load(config_path)
    hydra_path = run_dir / ".hydra" / "hydra.yaml"
    started_in = OmegaConf.load(hydra_path).hydra.runtime.cwd if hydra_path.is_file() else "."
    cfg.paths.output_dir = str(run_dir)
    cfg.paths.root_dir = str(started_in)
    return cfg


def load_trained_run(run_dir: str | Path, checkpoint: str = "last.ckpt"
                     ) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    """The trained module (eval mode, CPU) and the datamodule of a run folder, rebuilt from its config and
    ``checkpoints/<checkpoint>``."""
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoints" / checkpoint
    cfg = load_run_config(run_dir)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{ckpt_path}: missing; {run_dir} is not a finished ece-train run folder")
    module, datamodule = build_run(cfg)
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    return module.eval(), datamodule
