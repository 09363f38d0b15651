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
risk alone (``gamma=0``: the negative risk is clamped at 0 and the step descends the positive risk alone). With
every element annotated, R is plain cross-entropy; with pi_u = 0 it is too for the log surrogate (the sigmoid
surrogate then still scores unlabeled elements by p_obj).

Annotated means target > 0: binary soft targets count every element above 0 as an annotated object, so
label smoothing of the background would leave nothing unlabeled.

**The surrogate.** The hidden objects' terms and the unlabeled terms must use one loss for the estimate to be
unbiased. ``surrogate="log"`` uses cross-entropy's (l+ = -log p_obj, l- = -log p_bg); it is unbounded, so a
few confidently found annotated objects (large mean_A(l-)) can drive the negative risk below zero on their own.
``surrogate="sigmoid"`` uses Kiryo et al.'s bounded sigmoid loss (l+ = p_bg, l- = p_obj) for those terms;
the annotated objects' own term stays cross-entropy either way. With ``prior="auto"`` at sparsity 1 nothing is
unlabeled and the loss is torch's cross-entropy itself whatever the surrogate (the same numbers as ``loss=ce``).

**The prior.** ``prior="auto"`` derives pi_u from ``sparsity`` (the share of objects annotated) and the
annotated share pi_a = |A|/n of the batch: the batch holds about pi_a / sparsity objects in all, so
pi_u = pi_a (1 - sparsity) / (sparsity (1 - pi_a)). A number instead fixes the total object share pi of the
images (e.g. measured on exhaustively annotated images); then pi_u = (pi - pi_a) / (1 - pi_a), at least 0.
``prior_scale`` multiplies pi_u (a sensitivity check: x0.5, x2).

**Annotated context** (``annotation_margin`` > 0, image-shaped targets): unannotated pixels within that many
pixels of an annotated object are *labelled negatives* (cross-entropy as background), not unlabeled: whoever
outlined an object also saw that its surroundings are background, so the gap between a nucleus and its
neighbour is learned, not left to the prior (positive-negative-unlabeled learning). They leave the
unlabeled set; the hidden objects (pi_u times the unannotated count) are all taken to lie in the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .ce import check_reduction, is_binary, near_annotations

SURROGATES = ("sigmoid", "log")


class PositiveUnlabeledRisk(nn.Module):
    """The non-negative PU risk for multiclass logits (N, C, ...) with integer targets (N, ...), class 0 =
    background or unannotated, or for binary logits shaped like float targets (> 0 = annotated object).

    Args:
        sparsity: the share of objects annotated, in (0, 1] (the configs pass the run's ``sparsity``); used by
            ``prior="auto"``. 1.0 gives plain cross-entropy.
        prior: ``"auto"`` (from ``sparsity`` and the batch's annotated share, see the module docstring) or
            the total object share of the images in [0, 1).
        prior_scale: factor (>= 0) on the unlabeled-object prior pi_u.
        surrogate: ``sigmoid`` (default: on CPM-15 validation steadier over seeds than ``log``, README) or ``log``:
            the loss of the unlabeled and hidden-object terms (see above).
        beta: the negative risk may fall to ``-beta`` (>= 0) before the correction step is taken (paper: 0).
        gamma: step size factor (>= 0) of the correction step (paper: 1); 0 clamps instead: the negative risk
            counts as 0 and only the positive risk is descended, ``positive + max(0, negative)``.
        annotation_margin: pixels (>= 0, Chebyshev distance) around annotated objects that count as labelled
            background instead of unlabeled (0 = off; needs image-shaped targets (N, H, W, ...)).
        reduction: ``mean`` (over all elements), ``sum``, or ``none``: per-element contributions whose mean is
            the ``mean`` value (the correction is decided on the whole batch).
    """

    def __init__(self, sparsity: float = 1.0, prior: str | float = "auto", prior_scale: float = 1.0,
                 surrogate: str = "sigmoid", beta: float = 0.0, gamma: float = 1.0, annotation_margin: int = 0,
                 reduction: str = "mean"):
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
        if isinstance(annotation_margin, bool) or int(annotation_margin) != annotation_margin or annotation_margin < 0:
            raise ValueError(f"annotation_margin={annotation_margin} must be a whole number of pixels >= 0")
        self.surrogate, self.beta, self.gamma = surrogate, float(beta), float(gamma)
        self.annotation_margin = int(annotation_margin)
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
        binary = is_binary(logits, target)
        if self.prior == "auto" and self.sparsity == 1.0:  # exhaustive labels: nothing is unlabeled
            if binary:
                return F.binary_cross_entropy_with_logits(logits.reshape(target.shape), target.to(logits.dtype),
                                                          reduction=self.reduction)
            return F.cross_entropy(logits, target.long(), reduction=self.reduction)
        if self.reduction != "none" and (binary or logits.shape[1] == 2):
            return self._fused(logits, target, binary)
        return self._elementwise(logits, target, binary)

    def _context(self, annotated: torch.Tensor) -> torch.Tensor | None:
        """Unannotated elements within ``annotation_margin`` of an annotated one (labelled negatives), or None."""
        near = near_annotations(annotated, self.annotation_margin)
        return None if near is None else near & ~annotated

    def _hidden(self, annotated: torch.Tensor) -> torch.Tensor:
        """pi_u |U| / |A|: the hidden objects each annotated element stands for (0 without annotations)."""
        n = float(annotated.numel())
        n_annotated = annotated.sum().float()
        prior = self.unlabeled_prior(n_annotated / n)
        return torch.where(n_annotated > 0, prior * (n - n_annotated) / n_annotated.clamp_min(1.0), 0.0)

    def _fused(self, logits: torch.Tensor, target: torch.Tensor, binary: bool) -> torch.Tensor:
        """Two classes or binary logits: everything follows from the object-vs-background margin z, with the
        backward written out (``_SigmoidMargin``, ``_PositiveUnlabeledMargin`` for the log surrogate)."""
        if binary:
            margin = logits.reshape(target.shape)
            soft_target = target.float()
            annotated = soft_target > 0
        else:
            margin = logits[:, 1] - logits[:, 0]
            annotated = target > 0
            soft_target = annotated.float()
        with torch.no_grad():
            hidden = float(self._hidden(annotated))
            context = self._context(annotated)
        if self.surrogate == "sigmoid":
            with torch.no_grad():
                labelled = annotated.reshape(-1).nonzero().squeeze(1)
                rim = None if context is None else context.reshape(-1).nonzero().squeeze(1)
                targets = soft_target.reshape(-1).index_select(0, labelled)
            total = _SigmoidMargin.apply(logits, margin, labelled, targets, rim, hidden, self.beta, self.gamma)
        else:
            total = _PositiveUnlabeledMargin.apply(logits, margin, soft_target, annotated, context, hidden,
                                                   self.beta, self.gamma)
        return total / margin.numel() if self.reduction == "mean" else total

    def _elementwise(self, logits: torch.Tensor, target: torch.Tensor, binary: bool) -> torch.Tensor:
        if binary:
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
        with torch.no_grad():
            hidden = self._hidden(annotated)  # each annotated element stands for this many hidden objects
            context = self._context(annotated)
        labelled = mask if context is None else mask + context.float()  # labelled_ce is -log p_bg on the context
        # The negative risk, per element: unlabeled elements as background minus the hidden objects' share.
        negative_terms = (1.0 - labelled) * negative_loss - mask * hidden * negative_loss
        positive_terms = labelled * labelled_ce + mask * hidden * positive_loss
        negative_risk = negative_terms.sum() / n
        correct = (negative_risk < -self.beta).detach()
        corrected = positive_terms if self.gamma == 0 else -self.gamma * negative_terms
        per_element = torch.where(correct, corrected, positive_terms + negative_terms)
        if self.reduction == "none":
            return per_element
        if self.reduction == "sum":
            return per_element.sum()
        return per_element.mean()


class _PositiveUnlabeledMargin(torch.autograd.Function):
    """The summed PU risk with the log surrogate, for binary or two-class logits, from the margin z (object minus
    background logit), soft targets y on the annotated mask a, the labelled-negative context mask c (or None) and
    the hidden-object weight h, with the backward written out (the sigmoid surrogate: ``_SigmoidMargin``).

    The hidden objects' positive and negative terms of an annotated element add up to -h z, so the uncorrected
    risk is sum(softplus(z) - a (y + h) z) without context: cross-entropy against the target a (y + h). The
    negative risk is sum(softplus(z) (1 - c - a (1 + h))); the context adds sum(c softplus(z)) to the labelled
    (positive) part."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, margin: torch.Tensor, soft_target: torch.Tensor, annotated: torch.Tensor,
                context: torch.Tensor | None, hidden: float, beta: float, gamma: float) -> torch.Tensor:
        mask = annotated.to(margin.dtype)
        context = None if context is None else context.to(margin.dtype)
        softplus = F.softplus(margin)
        # 1 on unlabeled elements, -h on annotated ones, 0 on the labelled-negative context
        negative_weight = mask.mul(-(1.0 + hidden)).add_(1.0)
        if context is not None:
            negative_weight.sub_(context)
        negative_risk = torch.dot(softplus.reshape(-1), negative_weight.reshape(-1))
        correct = bool(negative_risk < -beta * margin.numel())
        if correct and gamma > 0:
            total = -gamma * negative_risk
        else:
            # annotated elements: CE on y, plus the hidden objects' positive terms (minus their negative ones)
            labelled = softplus.addcmul(soft_target, margin, value=-1.0)
            hidden_terms = margin.mul(-hidden) if not correct else softplus.sub(margin).mul_(hidden)
            total = torch.dot(labelled.add_(hidden_terms).reshape(-1), mask.reshape(-1))
            if context is not None:
                total = total + torch.dot(softplus.reshape(-1), context.reshape(-1))
            if not correct:
                unlabeled = 1.0 - mask if context is None else (1.0 - mask).sub_(context)
                total = total + torch.dot(softplus.reshape(-1), unlabeled.reshape(-1))
        ctx.save_for_backward(margin, soft_target, mask, context)
        ctx.settings = (hidden, correct, gamma)
        _remember_shapes(ctx, logits, margin)
        return total

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        margin, soft_target, mask, context = ctx.saved_tensors
        hidden, correct, gamma = ctx.settings
        sigmoid = torch.sigmoid(margin)  # d softplus(z) / dz
        unlabeled = 1.0 - mask if context is None else (1.0 - mask).sub_(context)
        if correct and gamma > 0:  # -gamma d(negative risk)
            grad = sigmoid.mul(unlabeled.sub(mask, alpha=hidden)).mul_(-gamma)
        else:
            # d/dz of -h z, or of h softplus(-z) when clamped
            hidden_grad = torch.full_like(margin, -hidden) if not correct else (sigmoid - 1.0).mul_(hidden)
            grad = (sigmoid - soft_target).add_(hidden_grad).mul_(mask)
            if context is not None:  # the labelled negatives
                grad.addcmul_(sigmoid, context)
            if not correct:
                grad.add_(sigmoid.mul(unlabeled))
        return _margin_gradient(ctx, grad, grad_output), None, None, None, None, None, None, None


def _remember_shapes(ctx, logits: torch.Tensor, margin: torch.Tensor) -> None:
    """What ``_margin_gradient`` needs to turn a margin gradient back into a logits gradient."""
    ctx.logits_shape, ctx.margin_shape = logits.shape, margin.shape
    ctx.two_class = logits.shape != margin.shape and logits.dim() == margin.dim() + 1 and logits.shape[1] == 2


def _margin_gradient(ctx, grad: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """d loss / d logits from d loss / d margin: two-class logits get +grad and -grad, binary ones grad."""
    if ctx.two_class:
        grad_logits = torch.empty(ctx.logits_shape, dtype=grad.dtype, device=grad.device)
        torch.mul(grad, grad_output, out=grad_logits[:, 1])
        torch.mul(grad, -grad_output, out=grad_logits[:, 0])
        return grad_logits
    return grad.mul_(grad_output).reshape(ctx.logits_shape)


class _SigmoidMargin(torch.autograd.Function):
    """``_PositiveUnlabeledMargin`` for the sigmoid surrogate, with the annotated elements (and the labelled-negative
    rim) as index lists: only they need the costly softplus of their cross-entropy, so every full-size pass is a
    sigmoid, a sum or a product (`ece-bench loss` on the CPU: 1.4x torch's cross-entropy instead of 1.9x).

    The negative risk is sum(sigmoid) - (1 + h) sum_A(sigmoid) - sum_rim(sigmoid); the labelled part is
    sum_A(softplus(z) - y z + h l_A) + sum_rim(softplus(z)), l_A = 1 - 2 sigmoid (1 - sigmoid when clamped)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, margin: torch.Tensor, labelled: torch.Tensor, targets: torch.Tensor,
                rim: torch.Tensor | None, hidden: float, beta: float, gamma: float) -> torch.Tensor:
        flat = margin.reshape(-1)
        sigmoid = torch.sigmoid(flat)
        sigmoid_labelled = sigmoid.index_select(0, labelled)
        sigmoid_rim = None if rim is None else sigmoid.index_select(0, rim)
        unlabeled_sum = sigmoid.sum() - sigmoid_labelled.sum()
        if sigmoid_rim is not None:
            unlabeled_sum = unlabeled_sum - sigmoid_rim.sum()
        negative_risk = unlabeled_sum - hidden * sigmoid_labelled.sum()
        correct = bool(negative_risk < -beta * flat.numel())
        if correct and gamma > 0:
            total = -gamma * negative_risk
        else:
            z = flat.index_select(0, labelled)
            hidden_terms = (1.0 - 2.0 * sigmoid_labelled) if not correct else (1.0 - sigmoid_labelled)
            total = (F.softplus(z) - targets * z + hidden * hidden_terms).sum()
            if rim is not None:
                total = total + F.softplus(flat.index_select(0, rim)).sum()
            if not correct:
                total = total + unlabeled_sum
        ctx.save_for_backward(sigmoid, labelled, targets, rim)
        ctx.settings = (hidden, correct, gamma)
        _remember_shapes(ctx, logits, margin)
        return total

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        sigmoid, labelled, targets, rim = ctx.saved_tensors
        hidden, correct, gamma = ctx.settings
        sigmoid_labelled = sigmoid.index_select(0, labelled)
        slope_labelled = sigmoid_labelled * (1.0 - sigmoid_labelled)
        if correct and gamma > 0:  # -gamma d(negative risk): weight 1 unlabeled, -h annotated, 0 on the rim
            grad = sigmoid * (1.0 - sigmoid)
            grad.mul_(-gamma)
            grad.index_copy_(0, labelled, slope_labelled * (gamma * hidden))
            if rim is not None:
                grad.index_fill_(0, rim, 0.0)
        else:
            grad = sigmoid * (1.0 - sigmoid) if not correct else torch.zeros_like(sigmoid)
            hidden_grad = slope_labelled * (-2.0 * hidden if not correct else -hidden)
            grad.index_copy_(0, labelled, sigmoid_labelled - targets + hidden_grad)
            if rim is not None:  # d softplus(z) / dz on the labelled negatives
                grad.index_copy_(0, rim, sigmoid.index_select(0, rim))
        grad = grad.reshape(ctx.margin_shape)
        return _margin_gradient(ctx, grad, grad_output), None, None, None, None, None, None, None
