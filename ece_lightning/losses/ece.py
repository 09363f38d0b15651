"""Exclusive cross-entropy (Panteli et al., ICCV 2021), written for numerical safety and speed.

Per element i with cross-entropy CE_i:

    L_i = CE_i                                   if i is annotated (an object label)
    L_i = R_i * X_i * F_i * CE_i                 if i is unannotated (label 0: background or a missed object)

- R_i, **negative sampling**: unannotated terms are kept at a rate r(e); ``sampling="expected"`` weights
  every term by r(e) (deterministic, no random numbers), ``"bernoulli"`` keeps each with probability r(e).
- X_i, **exclusivity test** (the "background group"): an unannotated term whose predicted object
  probability p_obj exceeds the threshold tau(e) is what a missed object looks like, so it is excluded
  (weight ``excluded_weight``, 0 by default).
- F_i, **focal re-weighting** of unannotated terms: alpha * p_obj ** gamma.
- **Annotated context** (``annotation_margin`` > 0, image-shaped targets): unannotated pixels within that
  many pixels of an annotated object are plain negatives (R = X = F = 1). Whoever annotated an object also
  saw its surroundings, so its boundary is learned as with CE; sampling and exclusion act only on
  pixels away from annotations, where missed objects can hide.

Confidence is a probability (scale invariant), never a raw logit. Everything is computed from
``softplus``/``log_softmax`` in float32, and p_obj ** gamma as exp(gamma * log p_obj), so loss and
gradients stay finite for logits up to |1e4| (also under bf16 autocast) and no 0 * inf appears.

``variant="reference"`` reproduces, element by element, the formula of the authors' package (NKI-AI/ece_loss,
PyPI ece-loss 1.0.0) minus its NaN: Bernoulli sampling at 0.5 sigmoid((e-150)/10), an
exclusivity test on the *raw* top-2 logit gap (the raw logit for binary inputs) <= 0.5 sigmoid((e-50)/10),
and focal weights 0.2 * (1 - p_t) ** 0.1. Unlike the package, binary targets > 0 count as annotated.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .ce import check_reduction, is_binary, near_annotations
from .schedules import SigmoidSchedule

VARIANTS = ("ece", "reference")
SAMPLING = ("expected", "bernoulli")

REFERENCE_DEFAULTS: dict[str, Any] = {
    "exclusion_threshold": {"start": 0.0, "end": 0.5, "midpoint": 50, "width": 10, "unit": "epochs"},
    "negative_rate": {"start": 0.0, "end": 0.5, "midpoint": 150, "width": 10, "unit": "epochs"},
    "focal": True,
    "focal_alpha": 0.2,
    "focal_gamma": 0.1,
    "sampling": "bernoulli",
    "annotation_margin": 0,
}


class ExclusiveCrossEntropy(nn.Module):
    """Exclusive cross-entropy for multiclass logits (N, C, ...) with integer targets (N, ...), class 0 =
    background/unannotated, or for binary logits shaped like float targets in [0, 1] (> 0 = annotated
    object), e.g. detection objectness.

    Args:
        variant: ``ece`` (this project's) or ``reference`` (the authors' package formula). Every
            argument left as ``None`` takes the variant's default (``ECE_DEFAULTS``, ``REFERENCE_DEFAULTS``).
        exclusion: switch the exclusivity test on/off.
        exclusion_threshold: schedule (number or SigmoidSchedule fields) of tau(e): object probability
            above which an unannotated term is excluded; 1.0 excludes nothing. For ``reference`` it is
            the raw-logit-gap threshold.
        excluded_weight: weight in [0, 1] left to excluded terms (0 drops them).
        negative_sampling: switch the down-sampling of unannotated terms on/off.
        negative_rate: schedule of r(e) in [0, 1], the kept fraction of unannotated terms.
        sampling: ``expected`` or ``bernoulli`` (see the module docstring).
        focal: switch focal re-weighting of unannotated terms on/off (off for ``ece``: measured no gain).
        focal_alpha: focal scale (> 0).
        focal_gamma: focal exponent (>= 0).
        annotation_margin: pixels around annotated objects treated as plain negatives (0 = off; needs
            targets (N, H, W, ...)).
        reduction: ``mean`` (over all elements), ``sum`` or ``none`` (shaped like the target).
    With every component off the loss equals plain cross-entropy.
    """

    def __init__(
        self,
        variant: str = "ece",
        exclusion: bool = True,
        exclusion_threshold: float | dict[str, Any] | None = None,
        excluded_weight: float = 0.0,
        negative_sampling: bool = True,
        negative_rate: float | dict[str, Any] | None = None,
        sampling: str | None = None,
        focal: bool | None = None,
        focal_alpha: float | None = None,
        focal_gamma: float | None = None,
        annotation_margin: int | None = None,
        reduction: str = "mean",
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant={variant!r} is not one of {', '.join(VARIANTS)}")
        defaults = REFERENCE_DEFAULTS if variant == "reference" else ECE_DEFAULTS
        pick = lambda value, key: defaults[key] if value is None else value  # noqa: E731
        self.variant = variant
        self.reduction = check_reduction(reduction)
        self.exclusion, self.negative_sampling = bool(exclusion), bool(negative_sampling)
        self.focal = bool(pick(focal, "focal"))
        self.exclusion_schedule = SigmoidSchedule.build(pick(exclusion_threshold, "exclusion_threshold"))
        self.negative_schedule = SigmoidSchedule.build(pick(negative_rate, "negative_rate"))
        self.sampling = pick(sampling, "sampling")
        if self.sampling not in SAMPLING:
            raise ValueError(f"sampling={self.sampling!r} is not one of {', '.join(SAMPLING)}")
        self.focal_alpha = float(pick(focal_alpha, "focal_alpha"))
        self.focal_gamma = float(pick(focal_gamma, "focal_gamma"))
        if self.focal_alpha <= 0 or self.focal_gamma < 0:
            raise ValueError(f"focal_alpha={self.focal_alpha} must be > 0 and focal_gamma={self.focal_gamma} >= 0")
        if not 0.0 <= excluded_weight <= 1.0:
            raise ValueError(f"excluded_weight={excluded_weight} must lie in [0, 1]")
        self.excluded_weight = float(excluded_weight)
        annotation_margin = pick(annotation_margin, "annotation_margin")
        if annotation_margin < 0:
            raise ValueError(f"annotation_margin={annotation_margin} must be >= 0 (pixels)")
        self.annotation_margin = int(annotation_margin)
        self.exclusion_threshold = self.negative_rate = 0.0
        # Where the schedules stand travels with the weights (``get_extra_state``): a checkpoint, or the weights
        # a ddp_spawn fit hands back to the main process, restores the schedule with them.
        self.set_progress(0, None)  # the start of training; the annealing callback advances it

    def set_progress(self, epoch: float, max_epochs: int | None) -> dict[str, float]:
        """Advance the schedules to ``epoch`` of ``max_epochs`` (``None``: unknown length, only the start
        of fraction schedules is defined); returns the current values."""
        self.epoch, self.max_epochs = epoch, max_epochs
        length = max_epochs or (1 if epoch == 0 else None)  # fraction schedules need the length later
        self.exclusion_threshold = self.exclusion_schedule(epoch, length)
        self.negative_rate = self.negative_schedule(epoch, length)
        if not 0.0 <= self.negative_rate <= 1.0:
            raise ValueError(f"negative_rate schedule gives {self.negative_rate} at epoch {epoch}; it must lie in [0, 1]")
        return self.schedule_values()

    def get_extra_state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "max_epochs": self.max_epochs}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.set_progress(state["epoch"], state["max_epochs"])

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: dict, strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        key = prefix + "_extra_state"
        if key in missing_keys:  # a checkpoint from before the schedule was saved: keep the current schedule
            missing_keys.remove(key)

    def schedule_values(self) -> dict[str, float]:
        return {"exclusion_threshold": self.exclusion_threshold, "negative_rate": self.negative_rate}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        terms = _Terms.of(logits, target)
        with torch.no_grad():
            plain = self._plain(terms)
            weight = self._weight(terms, plain)
        if terms.margin is not None and not self.focal and self.reduction != "none":
            # Two classes or binary, no gradient through the weights: fused passes, about CE's cost.
            total = _WeightedBinaryCrossEntropy.apply(terms.logits, terms.margin.detach(), terms.soft_target, weight)
            return total / terms.annotated.numel() if self.reduction == "mean" else total
        loss = terms.cross_entropy() * weight
        if self.focal:
            # alpha * p_obj ** gamma, through log p_obj: finite value and gradient even where p_obj -> 0.
            focal = self.focal_alpha * torch.exp(self.focal_gamma * terms.log_p_obj())
            loss = torch.where(plain, loss, loss * focal)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss

    def _plain(self, terms: _Terms) -> torch.Tensor:
        """Elements that keep plain CE: annotated ones and the annotated context around them."""
        context = self._annotated_context(terms.annotated)
        return terms.annotated if context is None else terms.annotated | context

    def _annotated_context(self, annotated: torch.Tensor) -> torch.Tensor | None:
        """Elements within ``annotation_margin`` (Chebyshev distance) of an annotated one."""
        return near_annotations(annotated, self.annotation_margin)

    def _weight(self, terms: _Terms, plain: torch.Tensor) -> torch.Tensor:
        """Per-element weight (no gradient): 1 on annotated elements and their context, else
        negative sampling x exclusion."""
        rate = self.negative_rate if self.negative_sampling else 1.0
        excluded = self._excluded(terms) if self.exclusion else None
        if isinstance(excluded, torch.Tensor):
            # rate * (excluded_weight if excluded else 1) as arithmetic on the mask: on the CPU torch.where
            # and masked_fill_ cost several times a multiply-add.
            weight = excluded.to(torch.float32).mul_(rate * (self.excluded_weight - 1.0)).add_(rate)
        else:
            weight = torch.full(terms.annotated.shape, rate * (self.excluded_weight if excluded else 1.0),
                                device=terms.annotated.device)
        if self.negative_sampling and self.sampling == "bernoulli":
            # Keep each unannotated term with probability r: weight 1 (or excluded_weight) or 0.
            drawn = torch.rand(terms.annotated.shape, device=weight.device) <= self.negative_rate
            weight = torch.where(drawn, weight / max(rate, 1e-12), 0.0)
        return torch.maximum(weight, plain.to(weight.dtype))  # 1 on plain elements (every weight is <= 1)

    def _excluded(self, terms: _Terms) -> torch.Tensor | bool:
        """The exclusivity test: True where an unannotated term is dropped (weight ``excluded_weight``)."""
        tau = self.exclusion_threshold
        if self.variant == "reference":
            return terms.raw_confidence() > tau
        if tau >= 1.0:
            return False
        if tau <= 0.0:
            return True
        # p_obj > tau, tested on the logit margin (sigmoid is monotone) or on log p_obj: a probability test.
        if terms.margin is not None:
            return terms.margin > math.log(tau / (1.0 - tau))
        return terms.log_p_obj() > math.log(tau)


class _WeightedBinaryCrossEntropy(torch.autograd.Function):
    """sum(w * (softplus(m) - y m)) for binary logits (m = logits) or two-class logits
    (m = logits[:, 1] - logits[:, 0]), soft targets y and weights w (no gradient), with the backward
    pass written out (d/dm = w (sigmoid(m) - y)) so no intermediate of the margin is kept by autograd."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, margin: torch.Tensor, soft_target: torch.Tensor, weight: torch.Tensor
                ) -> torch.Tensor:
        ctx.save_for_backward(margin, soft_target, weight)
        ctx.logits_shape = logits.shape
        ctx.two_class = logits.shape != margin.shape and logits.dim() == margin.dim() + 1 and logits.shape[1] == 2
        terms = F.softplus(margin).addcmul_(soft_target, margin, value=-1.0)
        return torch.dot(terms.reshape(-1), weight.reshape(-1))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        margin, soft_target, weight = ctx.saved_tensors
        grad = torch.sigmoid(margin).sub_(soft_target).mul_(weight)
        if ctx.two_class:  # both channels written straight into the gradient: no negated copy, no stack
            grad_logits = torch.empty(ctx.logits_shape, dtype=grad.dtype, device=grad.device)
            torch.mul(grad, grad_output, out=grad_logits[:, 1])
            torch.mul(grad, -grad_output, out=grad_logits[:, 0])
        else:
            grad_logits = grad.mul_(grad_output).reshape(ctx.logits_shape)
        return grad_logits, None, None, None


ECE_DEFAULTS: dict[str, Any] = {
    # Chosen by measurement (README, "ECE"): a warm-up of the first sixth of training where every
    # unannotated term is a negative weighted 0.1; then terms the model believes are objects
    # (p_obj > 0.5) are excluded, and half-way the weight of the remaining ones rises to 0.5. The
    # one-pixel ring around annotated objects stays a plain negative throughout.
    "exclusion_threshold": {"start": 1.0, "end": 0.5, "midpoint": 1 / 6, "width": 0.0, "unit": "fraction"},
    "negative_rate": {"start": 0.1, "end": 0.5, "midpoint": 0.5, "width": 0.05, "unit": "fraction"},
    "focal": False,
    "focal_alpha": 1.0,
    "focal_gamma": 0.0,
    "sampling": "expected",
    "annotation_margin": 1,
}


class _Terms:
    """What the loss needs of one (logits, target) pair: the annotated mask and, for two classes or
    binary logits, the object-vs-background logit margin and 0/1 (or soft) targets; log-probabilities
    are computed only when asked for (more than two classes, focal weights)."""

    def __init__(self, logits: torch.Tensor, target: torch.Tensor, margin: torch.Tensor | None,
                 soft_target: torch.Tensor | None, annotated: torch.Tensor):
        self.logits, self.target, self.margin = logits, target, margin
        self.soft_target, self.annotated = soft_target, annotated

    @classmethod
    def of(cls, logits: torch.Tensor, target: torch.Tensor) -> _Terms:
        logits = logits.float()
        if is_binary(logits, target):
            soft_target = target.float()
            return cls(logits, target, logits.reshape(target.shape), soft_target, soft_target > 0)
        target = target.long()
        annotated = target > 0
        if logits.shape[1] == 2:  # everything follows from the margin: no log_softmax, no top-k
            return cls(logits, target, logits[:, 1] - logits[:, 0], annotated.float(), annotated)
        return cls(logits, target, None, None, annotated)

    def cross_entropy(self) -> torch.Tensor:
        """Per-element CE (BCE with logits on the margin, stable for |margin| up to 1e4)."""
        if self.margin is not None:
            return F.softplus(self.margin) - self.soft_target * self.margin
        return F.cross_entropy(self.logits, self.target, reduction="none")

    def log_p_obj(self) -> torch.Tensor:
        """log of the probability of any object class (not background)."""
        if self.margin is not None:
            return F.logsigmoid(self.margin)
        log_probs = F.log_softmax(self.logits, dim=1)
        return torch.logsumexp(log_probs[:, 1:], dim=1)

    def raw_confidence(self) -> torch.Tensor:
        """The reference package's confidence: the raw logit (binary) or the gap of the top-2 logits."""
        if self.logits.shape == self.target.shape or self.logits.shape[1] == 1:
            return self.margin
        if self.margin is not None:
            return self.margin.abs()
        top2 = self.logits.topk(2, dim=1).values
        return top2[:, 0] - top2[:, 1]
