"""Optimiser registry (``optimizer.name``): each entry builds a ``torch.optim`` optimiser over the module's
parameters and checks its settings, naming the config key of a bad value; and the learning-rate schedules
(``scheduler.name``), stepped once per optimiser step over the whole training."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from .registry import Registry, check_arguments

OPTIMIZERS: Registry[torch.optim.Optimizer] = Registry("optimizer", "optimizer.name", dotted_paths=True)


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_common(lr: Any, weight_decay: Any) -> None:
    if not (_number(lr) and lr > 0):
        raise ValueError(f"optimizer.lr={lr!r} must be a number > 0")
    if not (_number(weight_decay) and weight_decay >= 0):
        raise ValueError(f"optimizer.weight_decay={weight_decay!r} must be a number >= 0")


def _check_betas(betas: Any) -> tuple[float, float]:
    values = list(betas) if isinstance(betas, Sequence) or hasattr(betas, "__iter__") else None
    if values is None or len(values) != 2 or not all(_number(b) and 0 <= b < 1 for b in values):
        raise ValueError(f"optimizer.betas={values if values is not None else betas!r} must be two numbers in [0, 1)")
    return float(values[0]), float(values[1])


@OPTIMIZERS.register("adam")
def adam(params: Iterable[torch.nn.Parameter], lr: float = 1e-4, betas: Sequence[float] = (0.9, 0.999),
         weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam (the paper's: lr 1e-4, betas (0.9, 0.999), no weight decay).

    Args:
        lr: learning rate (> 0).
        betas: the two moment decay rates, each in [0, 1).
        weight_decay: L2 penalty (>= 0), added to the gradient as in ``torch.optim.Adam``.
    """
    _check_common(lr, weight_decay)
    return torch.optim.Adam(params, lr=float(lr), betas=_check_betas(betas), weight_decay=float(weight_decay))


@OPTIMIZERS.register("adamw")
def adamw(params: Iterable[torch.nn.Parameter], lr: float = 1e-4, betas: Sequence[float] = (0.9, 0.999),
          weight_decay: float = 0.01) -> torch.optim.Optimizer:
    """AdamW: Adam with decoupled weight decay (``weight_decay`` >= 0, default 0.01); ``lr`` > 0, ``betas`` in
    [0, 1)."""
    _check_common(lr, weight_decay)
    return torch.optim.AdamW(params, lr=float(lr), betas=_check_betas(betas), weight_decay=float(weight_decay))


def build_optimizer(config: dict[str, Any], params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The optimiser an ``optimizer`` config names (``name`` defaults to ``adam``) over ``params``."""
    return OPTIMIZERS.build({"name": "adam", **config}, params=params)


def check_optimizer(config: dict[str, Any]) -> None:
    """Build the configured optimiser over a stand-in parameter: its settings are checked without a model."""
    build_optimizer(config, [torch.nn.Parameter(torch.zeros(1))])


#: learning-rate schedules (``scheduler.name``): the factor of the peak ``optimizer.lr`` at an optimiser step
SCHEDULERS: Registry[float] = Registry("learning-rate schedule", "scheduler.name")


def _warmup_steps(warmup: float, total_steps: int) -> int:
    """At least one warm-up step for any ``warmup`` above 0, so a schedule's first factor never depends on
    ``total_steps`` (``build_scheduler`` relies on it)."""
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0 <= warmup < 1:
        raise ValueError(f"warmup={warmup!r} must be a fraction of the training steps in [0, 1)")
    return max(1, int(round(warmup * total_steps))) if warmup > 0 else 0


_WARMUP_START = 1.0 / 25.0


@SCHEDULERS.register("none")
def constant(step: int, total_steps: int) -> float:
    """A constant learning rate (the paper's)."""
    return 1.0


@SCHEDULERS.register("cosine")
def cosine(step: int, total_steps: int, warmup: float = 0.0) -> float:
    """A linear warm-up from 1/25 to 1 over the first ``warmup`` fraction of the steps, then a cosine decay to 0
    at the last step."""
    warmup_steps = _warmup_steps(warmup, total_steps)
    if step < warmup_steps:
        return _WARMUP_START + (1.0 - _WARMUP_START) * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@SCHEDULERS.register("onecycle")
def one_cycle(step: int, total_steps: int, warmup: float = 0.0) -> float:
    """A cosine warm-up from 1/25 to 1 over the first ``warmup`` fraction of the steps, then a cosine decay to
    1/25e4 (``torch.optim.lr_scheduler.OneCycleLR``'s shape with its default divisors; momentum left alone)."""
    warmup_steps = _warmup_steps(warmup, total_steps)
    start, end = _WARMUP_START, 1.0 / 25.0e4
    if step < warmup_steps:
        return start + (1.0 - start) * 0.5 * (1.0 - math.cos(math.pi * step / warmup_steps))
    progress = (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps)
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def check_scheduler(config: dict[str, Any] | None) -> dict[str, Any]:
    """The ``scheduler`` config with its name (default ``none``), its keys and values checked."""
    config = {"name": "none", **(config or {})}
    options = {k: v for k, v in config.items() if k != "name"}
    factory = SCHEDULERS.get(config["name"])
    check_arguments(factory, options, prefix="scheduler", supplied=("step", "total_steps"))
    factory(0, 1, **options)
    return config


def build_scheduler(config: dict[str, Any] | None, optimizer: torch.optim.Optimizer,
                    total_steps: int | Callable[[], int]) -> torch.optim.lr_scheduler.LambdaLR | None:
    """The per-step schedule of ``optimizer`` over ``total_steps`` optimiser steps; None for ``none``.

    ``total_steps`` may be a callable, asked once at the first step after the initial one: a Lightning
    module passes ``trainer.estimated_stepping_batches``, which sets up the train loader when asked earlier,
    i.e. in ``configure_optimizers``, before a resumed run has restored its epoch (with loader workers the
    resumed epoch would then replay epoch 0's order and draws). The initial factor needs no total: every
    schedule's first factor is the same for any total (``_warmup_steps``).
    """
    config = check_scheduler(config)
    if config["name"] == "none":
        return None
    options = {k: v for k, v in config.items() if k != "name"}
    shape = functools.partial(SCHEDULERS.get(config["name"]), **options)
    resolved: list[int] = []

    def factor(step: int) -> float:
        if step == 0:
            return shape(0, total_steps=1)
        if not resolved:
            resolved.append(max(1, int(total_steps() if callable(total_steps) else total_steps)))
        return shape(step, total_steps=resolved[0])

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
