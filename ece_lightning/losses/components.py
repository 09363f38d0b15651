"""A loss's per-element terms split into its "Obj" (annotated) and "Background" (unannotated) parts, the
quantities of the paper's loss-dynamics argument (supplement Figure 1), computed from the very terms the
training loss sums, so tracking them changes nothing of what is optimised."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .ce import is_binary


@contextmanager
def elementwise(criterion: nn.Module) -> Iterator[nn.Module]:
    """``criterion`` with ``reduction="none"`` for the duration of the block (restored afterwards, also
    on errors); a loss without a ``reduction`` attribute is a TypeError naming it."""
    if not hasattr(criterion, "reduction"):
        raise TypeError(f"{type(criterion).__name__} has no 'reduction' attribute: its per-element terms "
                        "cannot be tracked")
    previous = criterion.reduction
    criterion.reduction = "none"
    try:
        yield criterion
    finally:
        criterion.reduction = previous


def reduce_like(criterion: nn.Module, per_element: torch.Tensor, logits: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
    """The value ``criterion`` returns under its own reduction, from its ``reduction="none"`` terms.

    ``mean`` divides by the number of elements, except for a multiclass cross-entropy with class weights,
    which (as torch's) divides by the summed weight of the targets' classes."""
    reduction = getattr(criterion, "reduction", "mean")
    if reduction == "none":
        return per_element
    if reduction == "sum":
        return per_element.sum()
    class_weights = getattr(criterion, "class_weights", None)
    if class_weights is not None and not is_binary(logits, target):
        return per_element.sum() / class_weights.to(per_element.device)[target.long()].sum()
    return per_element.mean()


def split_by_annotation(per_element: torch.Tensor, annotated: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean term over annotated elements (``obj``) and over unannotated ones (``background``), detached;
    NaN for a group with no element in this batch (a crop without annotated objects)."""
    per_element = per_element.detach().float().reshape(-1)
    annotated = annotated.reshape(-1)
    if annotated.shape != per_element.shape:
        raise ValueError(f"annotation mask of {annotated.numel()} elements for {per_element.numel()} loss terms")
    annotated_f = annotated.float()
    n_obj, n_background = annotated_f.sum(), (1.0 - annotated_f).sum()
    obj_sum = (per_element * annotated_f).sum()
    background_sum = per_element.sum() - obj_sum
    nan = torch.full((), float("nan"), device=per_element.device)
    # No division by zero and no host sync: an empty group reads as NaN.
    return {"obj": torch.where(n_obj > 0, obj_sum / n_obj.clamp_min(1.0), nan),
            "background": torch.where(n_background > 0, background_sum / n_background.clamp_min(1.0), nan)}
