"""Self-training with an EMA ("mean") teacher (Tarvainen & Valpola, NeurIPS 2017) for sparse annotations.

The teacher is a copy of the network whose weights follow the student's as an exponential moving average,
updated after every optimiser step. Once ``start`` of training has passed, every *unannotated* training pixel
the teacher calls an object with probability >= ``threshold`` becomes an object target for the student (the
teacher's most likely object class), under the run's loss: ``loss=ce`` gives plain self-training, ``loss=ece``
self-training on top of exclusive cross-entropy (pseudo-labelled pixels then count as annotated); ``loss=pu`` with
its automatic prior is refused (pseudo-labels would inflate the annotated share the prior is taken from).
Annotated pixels keep their labels; pixels the teacher is not sure of keep label 0.

It assumes the network finds unannotated nuclei with some confidence before ``start`` (the teacher can only
pass on what it believes); a threshold too low lets the teacher's false positives grow. The teacher is a
sub-module, so its weights travel in checkpoints (kill and resume continue the same averages) and in DDP every
rank updates it from the same synchronised student weights, so every rank holds the same teacher.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError


class MeanTeacher(nn.Module):
    """An EMA copy of ``net`` that turns its confident predictions into targets on unannotated pixels.

    Args:
        net: the student network (copied; the copy is never trained by gradients).
        momentum: EMA decay per optimiser step in [0, 1) (0.99: the teacher averages about the last 100
            steps). During the first steps the decay is ``min(momentum, (1 + t) / (10 + t))``, so the teacher
            does not keep the random initial weights for long.
        threshold: teacher object probability in (0.5, 1] above which an unannotated pixel becomes an object
            target (1.0 never: the teacher is kept but passes nothing on).
        start: fraction of training in [0, 1) before which no pseudo-label is given.
    """

    def __init__(self, net: nn.Module, momentum: float = 0.99, threshold: float = 0.9, start: float = 0.3):
        super().__init__()
        for key, value, valid, allowed in (
                ("momentum", momentum, 0.0 <= momentum < 1.0, "in [0, 1)"),
                ("threshold", threshold, 0.5 < threshold <= 1.0, "in (0.5, 1]"),
                ("start", start, 0.0 <= start < 1.0, "a fraction of training in [0, 1)")):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not valid:
                raise ConfigError(f"task.teacher.{key}={value!r} must be {allowed}")
        self.momentum, self.threshold, self.start = float(momentum), float(threshold), float(start)
        self.net = copy.deepcopy(net)
        self.net.requires_grad_(False)

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> None:
        """Move the teacher's weights towards ``student``'s after optimiser step ``step`` (0-based); buffers
        (batch-norm statistics) are copied."""
        decay = min(self.momentum, (1.0 + step) / (10.0 + step))
        for mine, theirs in zip(self.net.parameters(), student.parameters(), strict=True):
            mine.lerp_(theirs.detach(), 1.0 - decay)
        for mine, theirs in zip(self.net.buffers(), student.buffers(), strict=True):
            mine.copy_(theirs)

    def active(self, progress: float) -> bool:
        """Whether pseudo-labels are given at ``progress`` (fraction of training done)."""
        return self.threshold < 1.0 and progress >= self.start

    @torch.no_grad()
    def pseudo_targets(self, images: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``target`` (B, H, W) with the unannotated pixels the teacher is sure of set to its object class, and
        the mask of those pixels."""
        self.net.eval()  # Lightning's train() reaches the teacher too: it always predicts with its statistics
        probabilities = torch.softmax(self.net(images).float(), dim=1)
        object_probability, object_class = probabilities[:, 1:].sum(dim=1), probabilities[:, 1:].argmax(dim=1) + 1
        pseudo = (target == 0) & (object_probability >= self.threshold)
        return torch.where(pseudo, object_class.to(target.dtype), target), pseudo

    def extra_repr(self) -> str:
        return f"momentum={self.momentum}, threshold={self.threshold}, start={self.start}"


def build_teacher(config: dict[str, Any] | None, net: nn.Module, loss: dict[str, Any] | None = None
                  ) -> MeanTeacher | None:
    """The teacher of a ``task.teacher`` config (``None`` or ``{}``: no self-training); unknown keys are named, and
    so is the run's ``loss`` config where it cannot take pseudo-labels (``pu`` with its automatic prior)."""
    if not config:
        return None
    allowed = ("momentum", "threshold", "start")
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ConfigError(f"task.teacher has unknown key(s) {', '.join(unknown)}; valid: {', '.join(allowed)}")
    loss = loss or {}
    if loss.get("name") == "pu" and loss.get("prior", "auto") == "auto":
        raise ConfigError("task.teacher with loss=pu (prior auto): pseudo-labels would count as annotated and inflate "
                          "the prior taken from the annotated share; use loss=ce or loss=ece with a teacher, or give "
                          "loss.prior a number")
    return MeanTeacher(net, **config)
