"""Loss registry: a config names an entry (``loss.name``) and passes its arguments.

Every loss is a pure-torch ``nn.Module`` called as ``loss(logits, target)``. A loss that keeps state per
training pixel (ELR's temporal ensembling) sets ``requires_pixels = True``, is called as
``loss(logits, target, pixels=...)`` with the samples' dataset-wide pixel ids, and exposes
``allocate(num_pixels, num_channels)``, which the module calls when it sees its training set; one with a
training schedule exposes
``set_progress(epoch, max_epochs)``, which the annealing callback drives. Every entry takes binary
logits too, so it can serve as the objectness loss of detection (``DetectionLoss``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .ce import CrossEntropy
from .detection import DetectionLoss
from .ece import ExclusiveCrossEntropy
from .elr import EarlyLearningRegularization
from .focal import FocalLoss
from .schedules import SigmoidSchedule

LOSSES: dict[str, Callable[..., nn.Module]] = {
    "ce": CrossEntropy,
    "ece": ExclusiveCrossEntropy,
    "elr": EarlyLearningRegularization,
    "focal": FocalLoss,
}


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the registered loss ``name`` with ``kwargs``; unknown names list the valid ones."""
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; registered losses: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](**kwargs)


__all__ = ["LOSSES", "CrossEntropy", "DetectionLoss", "EarlyLearningRegularization", "ExclusiveCrossEntropy", "FocalLoss", "SigmoidSchedule", "build_loss"]
