"""Plain cross-entropy: the baseline that treats every unannotated element as background."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REDUCTIONS = ("mean", "sum", "none")


def is_binary(logits: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether ``logits`` are binary (shaped like the float target, or with one channel more) rather than
    multiclass (N, C, ...) over an integer target (N, ...); any other pair of shapes is a ValueError."""
    if logits.shape == target.shape or (logits.dim() == target.dim() + 1 and logits.shape[1] == 1):
        return True
    if logits.dim() != target.dim() + 1 or logits.shape[:1] + logits.shape[2:] != target.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} do not fit target {tuple(target.shape)}: expected logits (N, C, ...) "
            "with integer target (N, ...), or binary logits shaped like a float target"
        )
    return False


def near_annotations(annotated: torch.Tensor, margin: int) -> torch.Tensor | None:
    """The boolean mask of elements within ``margin`` pixels (Chebyshev distance) of an annotated one, annotated
    ones included, over the last two axes of ``annotated`` (N, H, W, ...); None where ``margin`` is 0 or the
    mask is not image-shaped (fewer than 3 axes)."""
    if not margin or annotated.dim() < 3:
        return None
    near = annotated
    for axis in (-2, -1):  # a square dilation is a max over rows, then over columns
        grown = near.clone()
        size = near.shape[axis]
        for shift in range(1, min(margin, size - 1) + 1):
            grown.narrow(axis, shift, size - shift).logical_or_(near.narrow(axis, 0, size - shift))
            grown.narrow(axis, 0, size - shift).logical_or_(near.narrow(axis, shift, size - shift))
        near = grown
    return near


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of {', '.join(REDUCTIONS)}")
    return reduction


class CrossEntropy(nn.Module):
    """Cross-entropy for multiclass logits (N, C, ...) and integer targets (N, ...).

    With a single logit channel (N, 1, ...) or logits shaped like the target it is the binary
    cross-entropy with logits against float targets in [0, 1].

    Args:
        class_weights: optional per-class weights (multiclass only), e.g. ``[1.0, 2.0]``.
        reduction: ``mean`` (over elements), ``sum`` or ``none`` (per-element tensor shaped like the target).
    """

    def __init__(self, class_weights: list[float] | None = None, reduction: str = "mean"):
        super().__init__()
        self.reduction = check_reduction(reduction)
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if is_binary(logits, target):
            logits = logits.reshape(target.shape)
            return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction=self.reduction)
        return F.cross_entropy(logits, target.long(), weight=self.class_weights, reduction=self.reduction)
