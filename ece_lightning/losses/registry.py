"""The loss registry ``LOSSES`` (``loss.name``): the per-element losses, each usable for segmentation logits
and, as the objectness loss of ``DetectionLoss``, for binary logits."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..registry import Registry
from .ce import CrossEntropy
from .ece import ExclusiveCrossEntropy
from .elr import EarlyLearningRegularization
from .focal import FocalLoss
from .pu import PositiveUnlabeledRisk

LOSSES: Registry[nn.Module] = Registry("loss", "loss.name", dotted_paths=True)
LOSSES.register("ce", CrossEntropy)
LOSSES.register("ece", ExclusiveCrossEntropy)
LOSSES.register("elr", EarlyLearningRegularization)
LOSSES.register("focal", FocalLoss)
LOSSES.register("pu", PositiveUnlabeledRisk)


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """The registered loss ``name`` built with ``kwargs``; an unknown name lists the valid ones."""
    return LOSSES.create(name, kwargs)
