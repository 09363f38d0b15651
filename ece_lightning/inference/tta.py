"""Test-time augmentation (TTA) of a segmentation network: its class probabilities averaged over flipped (and
rotated) copies of the input, each mapped back onto the input's pixels (``task.postprocess.tta``).

A U-Net is not exactly equivariant to flips, so the copies disagree where the prediction is uncertain (borders,
faint nuclei, the gap between touching ones); their mean is a steadier probability map. The cost is one forward
pass per copy: 4 for ``flips``, 8 for ``dihedral``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

#: ``none``: the network alone; ``flips``: identity, horizontal, vertical and both flips; ``dihedral``: those
#: and the same four after a transpose (every rotation by 90 degrees and every mirror image)
TTA_MODES = ("none", "flips", "dihedral")

Transform = Callable[[torch.Tensor], torch.Tensor]
_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def _flip(dims: tuple[int, ...]) -> Transform:
    return (lambda x: x.flip(dims)) if dims else (lambda x: x)


def _transposed(flip: Transform, first: bool) -> Transform:
    # forward: transpose, then flip; inverse: flip (its own inverse), then transpose back
    return (lambda x: flip(x.transpose(-2, -1))) if first else (lambda x: flip(x).transpose(-2, -1))


def check_tta(mode: object, key: str = "task.postprocess.tta") -> str:
    """``mode`` if it is one of ``TTA_MODES``, else a ValueError naming ``key`` and the valid values."""
    if mode not in TTA_MODES:
        raise ValueError(f"{key}={mode!r} is not one of {', '.join(TTA_MODES)}")
    return str(mode)


def tta_transforms(mode: str) -> list[tuple[Transform, Transform]]:
    """(transform of the input, its inverse for the output) pairs of ``mode`` (one of ``TTA_MODES``), identity
    first. Both act on the last two (spatial) dimensions."""
    if check_tta(mode, "tta") == "none":
        return [(_flip(()), _flip(()))]
    pairs = [(_flip(dims), _flip(dims)) for dims in _FLIPS]
    if mode == "dihedral":
        pairs += [(_transposed(_flip(dims), True), _transposed(_flip(dims), False)) for dims in _FLIPS]
    return pairs


def average_over_transforms(forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                            mode: str) -> torch.Tensor:
    """Logits whose softmax (sigmoid for one channel) is the mean probability of ``forward`` over the copies of
    ``images`` that ``mode`` makes; ``none`` is ``forward(images)`` itself. ``dihedral`` transposes, so the images'
    height and width must both suit the network (whole images are padded to its multiple on both sides)."""
    pairs = tta_transforms(mode)
    if len(pairs) == 1:
        return forward(images)
    total = None
    for transform, inverse in pairs:
        logits = forward(transform(images)).float()
        probability = torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)
        total = inverse(probability) if total is None else total + inverse(probability)
    mean = total / len(pairs)
    if mean.shape[1] == 1:
        return torch.logit(mean, eps=1e-7)
    return torch.log(mean.clamp_min(torch.finfo(mean.dtype).tiny))  # log-probabilities are logits of the same softmax


class TransformAverage(nn.Module):
    """``net`` under test-time augmentation (``average_over_transforms``); a module, so ``.to`` and ``.eval``
    reach the wrapped network. Used by ``ece-predict``; the Lightning module applies the same function."""

    def __init__(self, net: nn.Module, mode: str):
        super().__init__()
        self.net, self.mode = net, check_tta(mode, "tta")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return average_over_transforms(self.net, images, self.mode)
