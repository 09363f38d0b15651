"""Network registry: a config names an entry (``model.name``) and passes its arguments. Every model class
says which task it serves (``task = "segmentation"`` or ``"detection"``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..registry import Registry
from .unet import UNet
from .yollo import YOLLO

MODELS: Registry[nn.Module] = Registry("model", "model.name", dotted_paths=True)
MODELS.register("unet", UNet)
MODELS.register("yollo", YOLLO)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """The registered model ``name`` built with ``kwargs``; an unknown name lists the valid ones."""
    return MODELS.create(name, kwargs)


def models_for(task: str) -> list[str]:
    """Names of the registered models that serve ``task``."""
    return [name for name, model in MODELS.items() if getattr(model, "task", None) == task]


__all__ = ["MODELS", "UNet", "YOLLO", "build_model", "models_for"]
