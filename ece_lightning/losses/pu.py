"""Non-negative positive-unlabeled risk (nnPU, Kiryo et al., NeurIPS 2017) for sparse object annotations.

With sparse labels, an unannotated pixel is not a negative: it is *unlabeled*, background or a nucleus nobody
annotated. PU learning treats it so. Let A be the annotated (object) elements of a batch, U the others, n all
of them, and pi_u the share of objects among U (the prior). Per element, l+ is the loss of calling it an
object (-log p_obj) and l- of calling it background (-log p_bg). The risk over all n elements is

    R = (1/n) [ sum_A CE + pi_u |U| mean_A(l+) ]  +  (|U|/n) max(0, mean_U(l-) - pi_u mean_A(l-))
          the annotated objects, and the            the negative risk: unlabeled elements as background,
          hidden ones they stand for                minus what the hidden objects among them contribute

It assumes the annotated objects are a random sample of all objects (whole objects dropped at random, as
``sparsity`` does), so mean_A estimates the hidden objects' terms. When the negative risk estimate falls below
zero (over-fitting the unlabeled set), the step follows Kiryo et al.: it descends ``-gamma`` times the negative
risk alone (``gamma=0``: the negative risk is clamped at 0 and the step descends the positive risk alone). With every element annotated, or pi_u = 0, R is plain cross-entropy.

**The surrogate.** The hidden objects' terms and the unlabeled terms must use one loss for the estimate to be
unbiased. ``surrogate="log"`` uses cross-entropy's (l+ = -log p_obj, l- = -log p_bg); it is unbounded, so a
few confidently found annotated objects (large mean_A(l-)) can drive the negative risk below zero on their own.
``surrogate="sigmoid"`` uses Kiryo et al.'s bounded sigmoid loss (l+ = p_bg, l- = p_obj) for those terms;
the annotated objects' own term stays cross-entropy either way.

**The prior.** ``prior="auto"`` derives pi_u from ``sparsity`` (the share of objects annotated) and the
annotated share pi_a = |A|/n of the batch: the batch holds about pi_a / sparsity objects in all, so
pi_u = pi_a (1 - sparsity) / (sparsity (1 - pi_a)). A number instead fixes the total object share pi of the
images (e.g. measured on exhaustively annotated images); then pi_u = (pi - pi_a) / (1 - pi_a), at least 0.
``prior_scale`` multiplies pi_u (a sensitivity check: x0.5, x2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .ce import check_reduction, is_binary

SURROGATES = ("log", "sigmoid")


class PositiveUnlabeledRisk(nn.Module):
    """The non-negative PU risk for multiclass logits (N, C, ...) with integer targets (N, ...), class 0 =
    background or unannotated, or for binary logits shaped like float targets (> 0 = annotated object).

    Args:
        sparsity: the share of objects annotated, in (0, 1] (the configs pass the run's ``sparsity``); used by
            ``prior="auto"``. 1.0 gives plain cross-entropy.
        prior: ``"auto"`` (from ``sparsity`` and the batch's annotated share, see the module docstring) or
            the total object share of the images in [0, 1).
        prior_scale: factor (>= 0) on the unlabeled-object prior pi_u.
        surrogate: ``log`` or ``sigmoid``: the loss of the unlabeled and hidden-object terms (see above).
        beta: the negative risk may fall to ``-beta`` (>= 0) before the correction step is taken (paper: 0).
        gamma: step size factor (>= 0) of the correction step (paper: 1); 0 clamps instead: the negative risk
            counts as 0 and only the positive risk is descended, ``positive + max(0, negative)``.
        reduction: ``mean`` (over all elements), ``sum``, or ``none``: per-element contributions whose mean is
            the ``mean`` value (the correction is decided on the whole batch).
    """

    def __init__(self, sparsity: float = 1.0, prior: str | float = "auto", prior_scale: float = 1.0,
                 surrogate: str = "log", beta: float = 0.0, gamma: float = 1.0, reduction: str = "mean"):
        super().__init__()
        if not 0.0 < sparsity <= 1.0:
            raise ValueError(f"sparsity={sparsity} must lie in (0, 1]: the share of objects annotated")
        if isinstance(prior, str):
            if prior != "auto":
                raise ValueError(f"prior={prior!r} must be 'auto' or the object share of the images in [0, 1)")
        elif not 0.0 <= prior < 1.0:
            raise ValueError(f"prior={prior} must be 'auto' or the object share of the images in [0, 1)")
        if not prior_scale >= 0:
            raise ValueError(f"prior_scale={prior_scale} must be >= 0")
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate={surrogate!r} is not one of {', '.join(SURROGATES)}")
        if not beta >= 0 or not gamma >= 0:
            raise ValueError(f"beta={beta} and gamma={gamma} must be >= 0")
        self.sparsity, self.prior, self.prior_scale = float(sparsity), prior, float(prior_scale)
        self.surrogate, self.beta, self.gamma = surrogate, float(beta), float(gamma)
        self.reduction = check_reduction(reduction)

    def unlabeled_prior(self, annotated_share: torch.Tensor) -> torch.Tensor:
        """pi_u, the object share among unannotated elements, for the batch's annotated share (a tensor)."""
        rest = (1.0 - annotated_share).clamp_min(1e-6)
        if self.prior == "auto":
            prior = annotated_share * (1.0 - self.sparsity) / (self.sparsity * rest)
        else:
            prior = (float(self.prior) - annotated_share).clamp_min(0.0) / rest
        return (prior * self.prior_scale).clamp(0.0, 1.0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if is_binary(logits, target):
            logits = logits.reshape(target.shape)
            annotated = target > 0
            log_obj, log_bg = F.logsigmoid(logits), F.logsigmoid(-logits)
            labelled_ce = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
        else:
            target = target.long()
            annotated = target > 0
            log_probs = F.log_softmax(logits, dim=1)
            log_bg = log_probs[:, 0]
            log_obj = torch.logsumexp(log_probs[:, 1:], dim=1)
            labelled_ce = -log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
        if self.surrogate == "log":
            positive_loss, negative_loss = -log_obj, -log_bg
        else:
            positive_loss, negative_loss = log_bg.exp(), log_obj.exp()
        mask = annotated.float()
        n = float(mask.numel())
        n_annotated = mask.sum()
        n_unlabeled = n - n_annotated
        with torch.no_grad():
            prior = self.unlabeled_prior(n_annotated / n)
            # Each annotated element stands for pi_u |U| / |A| hidden objects among the unlabeled ones.
            hidden = torch.where(n_annotated > 0, prior * n_unlabeled / n_annotated.clamp_min(1.0), 0.0)
        # The negative risk, per element: unlabeled elements as background minus the hidden objects' share.
        negative_terms = (1.0 - mask) * negative_loss - mask * hidden * negative_loss
        positive_terms = mask * (labelled_ce + hidden * positive_loss)
        negative_risk = negative_terms.sum() / n
        correct = (negative_risk < -self.beta).detach()
        corrected = positive_terms if self.gamma == 0 else -self.gamma * negative_terms
        per_element = torch.where(correct, corrected, positive_terms + negative_terms)
        if self.reduction == "none":
            return per_element
        if self.reduction == "sum":
            return per_element.sum()
        return per_element.mean()
