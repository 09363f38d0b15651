"""Focal loss (Lin et al. 2017): ``alpha_t * (1 - p_t) ** gamma * CE``, a baseline of the paper."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .ce import check_reduction, is_binary


class FocalLoss(nn.Module):
    """Focal loss for multiclass logits (N, C, ...) with integer targets (N, ...), or binary logits shaped
    like (or one channel more than) float targets in {0, 1}.

    ``(1 - p_t) ** gamma`` is computed as ``exp(gamma * log(1 - p_t))`` from log-probabilities, so loss and
    gradient stay finite for any gamma >= 0 and logits up to |1e4| (no 0 * inf where p_t -> 1).

    Args:
        gamma: focusing exponent (>= 0); 0 gives cross-entropy (times the alpha weights).
        alpha: class balance in [0, 1]: weight ``alpha`` for object elements (binary target 1, or class > 0)
            and ``1 - alpha`` for background; ``None`` (default) weights every element 1, so
            ``gamma=0, alpha=None`` equals plain cross-entropy. Lin et al. use 0.25 with gamma 2.
        reduction: ``mean`` (over elements), ``sum`` or ``none`` (shaped like the target).
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None, reduction: str = "mean"):
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"gamma={gamma} must be >= 0")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha} must lie in [0, 1] (or be null for no class balance)")
        self.gamma, self.alpha = float(gamma), None if alpha is None else float(alpha)
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if is_binary(logits, target):
            logits = logits.reshape(target.shape)
            target = target.float()
            positive = target > 0.5
            cross_entropy = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            # 1 - p_t is sigmoid(-logit) for positives and sigmoid(logit) for negatives.
            log_miss = F.logsigmoid(torch.where(positive, -logits, logits))
        else:
            target = target.long()
            positive = target > 0
            log_probs = F.log_softmax(logits, dim=1)
            cross_entropy = -log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
            # log(1 - p_t) = logsumexp of the other classes' log-probabilities.
            others = log_probs.masked_fill(F.one_hot(target, logits.shape[1]).movedim(-1, 1).bool(), float("-inf"))
            log_miss = torch.logsumexp(others, dim=1)
        loss = cross_entropy if self.gamma == 0 else cross_entropy * torch.exp(self.gamma * log_miss)
        if self.alpha is not None:
            loss = loss * torch.where(positive, self.alpha, 1.0 - self.alpha)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss
