"""Optimiser registry (``optimizer.name``): each entry builds a ``torch.optim`` optimiser over the module's
parameters and checks its settings, naming the config key of a bad value."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from .registry import Registry

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
