"""Network registry: a config names an entry (``model.name``) and passes its arguments. Every model class
says which task it serves (``task = "segmentation"`` or ``"detection"``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .unet import UNet
from .yollo import YOLLO

MODELS: dict[str, Callable[..., nn.Module]] = {"unet": UNet, "yollo": YOLLO}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the registered model ``name`` with ``kwargs``; unknown names list the valid ones."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


__all__ = ["MODELS", "UNet", "YOLLO", "build_model"]
