import math

import pytest
import torch
import torch.nn.functional as F

from ece_lightning.losses import PositiveUnlabeledRisk, build_loss
from ece_lightning.losses.pu import SURROGATES as SURROGATE_NAMES

LOG2 = math.log(2.0)


def test_every_element_annotated_or_full_sparsity_is_cross_entropy():
    logits = torch.randn(2, 2, 6, 6, requires_grad=True)
    target = torch.randint(0, 2, (2, 6, 6))
    # At sparsity 1 it is torch's cross-entropy itself: the same bits, value and gradient, as loss=ce.
    value = PositiveUnlabeledRisk(sparsity=1.0)(logits, target)
    (gradient,) = torch.autograd.grad(value, logits)
    reference = F.cross_entropy(logits, target)
    assert torch.equal(value, reference) and torch.equal(gradient, torch.autograd.grad(reference, logits)[0])
    logits = logits.detach()
    for surrogate in ("log", "sigmoid"):
        torch.testing.assert_close(PositiveUnlabeledRisk(sparsity=1.0, surrogate=surrogate)(logits, target),
                                   F.cross_entropy(logits, target))
    everything = torch.ones(2, 6, 6, dtype=torch.long)
    torch.testing.assert_close(PositiveUnlabeledRisk(sparsity=0.3, surrogate="log")(logits, everything),
                               F.cross_entropy(logits, everything))
    # A fixed prior of 0 (no hidden objects) is cross-entropy at any sparsity.
    torch.testing.assert_close(PositiveUnlabeledRisk(sparsity=0.3, prior=0.0, surrogate="log")(logits, target),
                               F.cross_entropy(logits, target))
    binary, soft = torch.randn(3, 5), torch.randint(0, 2, (3, 5)).float()
    torch.testing.assert_close(PositiveUnlabeledRisk()(binary, soft), F.binary_cross_entropy_with_logits(binary, soft))


def test_hand_computed_risk():
    # Four elements, one annotated, sparsity 0.5: pi_a = 1/4, pi_u = (1/4)(1/2) / ((1/2)(3/4)) = 1/3, and the
    # annotated element stands for pi_u |U| / |A| = 1 hidden object.
    # Logits 0 everywhere: every l+ and l- is log 2, so
    # R = (1/4) [log2 + 1 * log2] + (1/4) [3 log2 - 1 * log2] = log 2.
    loss = PositiveUnlabeledRisk(sparsity=0.5, surrogate="log")
    logits, target = torch.zeros(4), torch.tensor([1.0, 0.0, 0.0, 0.0])
    torch.testing.assert_close(loss(logits, target), torch.tensor(LOG2))
    # One unlabeled element confident it is an object (logit 3) lowers the negative risk, not the positive one:
    # its l- is softplus(3).
    logits = torch.tensor([0.0, 3.0, 0.0, 0.0])
    expected = (2 * LOG2 + (F.softplus(torch.tensor(3.0)).item() + 2 * LOG2 - LOG2)) / 4
    torch.testing.assert_close(loss(logits, target), torch.tensor(expected))
    # The per-element contributions average to the loss.
    torch.testing.assert_close(PositiveUnlabeledRisk(sparsity=0.5, surrogate="log", reduction="none")(logits, target).mean(),
                               torch.tensor(expected))


def test_negative_risk_below_zero_takes_the_correction_step():
    # The unlabeled elements are all confidently background, the annotated one looks like background too:
    # mean_U(l-) is tiny and pi_u mean_A(l-) large, so the negative risk is negative.
    loss = PositiveUnlabeledRisk(sparsity=0.5, surrogate="log")
    logits = torch.tensor([-4.0, -8.0, -8.0, -8.0], requires_grad=True)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0])
    value = loss(logits, target)
    l_minus = F.softplus(logits.detach())  # -log sigmoid(-x)
    negative_risk = (l_minus[1:].sum() - 1.0 * l_minus[0]) / 4
    assert negative_risk < 0
    torch.testing.assert_close(value, -negative_risk)


def test_correction_gradient_is_minus_gamma_times_the_negative_risk_gradient():
    logits = torch.tensor([-4.0, -8.0, -8.0, -8.0], requires_grad=True)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0])
    PositiveUnlabeledRisk(sparsity=0.5, surrogate="log", gamma=0.5)(logits, target).backward()
    reference = logits.detach().clone().requires_grad_()
    negative_risk = (F.softplus(reference[1:]).sum() - F.softplus(reference[0])) / 4
    (-0.5 * negative_risk).backward()
    torch.testing.assert_close(logits.grad, reference.grad)


def test_unlabeled_objects_cost_less_than_under_cross_entropy():
    # A confident object prediction on an unannotated pixel: CE punishes it fully, PU by less.
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 1, 0, 0], logits[0, 1, 3, 3] = 5.0, 5.0  # one annotated object pixel, one unannotated
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, 0, 0] = 1
    pu = PositiveUnlabeledRisk(sparsity=0.3, surrogate="log", reduction="none")(logits, target)
    ce = F.cross_entropy(logits, target, reduction="none")
    assert pu[0, 3, 3] == ce[0, 3, 3]  # its own term is a negative term ...
    assert PositiveUnlabeledRisk(sparsity=0.3, surrogate="log")(logits, target) < ce.mean()  # ... offset by the hidden objects'


def test_prior_auto_fixed_and_scaled():
    share = torch.tensor(0.1)
    assert PositiveUnlabeledRisk(sparsity=0.3).unlabeled_prior(share).item() == pytest.approx(0.1 * 0.7 / (0.3 * 0.9))
    assert PositiveUnlabeledRisk(sparsity=0.3, prior=0.25).unlabeled_prior(share).item() == pytest.approx(0.15 / 0.9)
    assert PositiveUnlabeledRisk(sparsity=0.3, prior_scale=2.0).unlabeled_prior(share).item() == pytest.approx(
        2 * 0.1 * 0.7 / (0.3 * 0.9))
    assert PositiveUnlabeledRisk(sparsity=0.3, prior=0.05).unlabeled_prior(share).item() == 0.0
    assert PositiveUnlabeledRisk(sparsity=0.01).unlabeled_prior(torch.tensor(0.5)).item() == 1.0  # clamped


def test_a_batch_without_annotations_is_all_negatives():
    logits, target = torch.randn(2, 2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)
    torch.testing.assert_close(PositiveUnlabeledRisk(sparsity=0.3, surrogate="log")(logits, target),
                               F.cross_entropy(logits, target))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("binary", [True, False])
def test_finite_loss_and_gradients_for_huge_logits(dtype, binary):
    scale = torch.tensor([1e4, -1e4, 0.0, 30.0, -1e4, 1e4])
    if binary:
        logits, target = scale.to(dtype).requires_grad_(), torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    else:
        logits = torch.stack([-scale, scale], dim=1).to(dtype).requires_grad_()
        target = torch.tensor([1, 0, 1, 0, 0, 0])
    for sparsity, surrogate, gamma in [(0.1, "log", 1.0), (0.3, "log", 0.0), (0.3, "sigmoid", 1.0), (1.0, "log", 1.0)]:
        logits.grad = None
        loss = PositiveUnlabeledRisk(sparsity=sparsity, surrogate=surrogate, gamma=gamma)(logits, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad.float()).all()


def test_arguments_are_checked_and_named():
    assert isinstance(build_loss("pu", sparsity=0.3), PositiveUnlabeledRisk)
    for kwargs, message in [({"sparsity": 0.0}, "sparsity=0.0"), ({"sparsity": 1.5}, "sparsity=1.5"),
                            ({"prior": "learned"}, "prior='learned'"), ({"prior": 1.0}, "prior=1.0"),
                            ({"prior_scale": -1.0}, "prior_scale=-1.0"), ({"gamma": -1.0}, "gamma=-1.0"), ({"surrogate": "hinge"}, "surrogate='hinge'"),
                            ({"beta": -0.1}, "beta=-0.1")]:
        with pytest.raises(ValueError, match=message):
            PositiveUnlabeledRisk(**kwargs)


def test_gamma_zero_clamps_the_negative_risk():
    logits = torch.tensor([-4.0, -8.0, -8.0, -8.0], requires_grad=True)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0])
    value = PositiveUnlabeledRisk(sparsity=0.5, surrogate="log", gamma=0.0)(logits, target)
    # positive risk only: the annotated element's CE plus its one hidden object, both softplus(4)
    torch.testing.assert_close(value, 2 * F.softplus(torch.tensor(4.0)) / 4)
    value.backward()
    assert (logits.grad[1:] == 0).all() and logits.grad[0] < 0


def test_sigmoid_surrogate_is_bounded():
    # Logit 0: p = 0.5, so every surrogate term is 0.5; one annotated of four at sparsity 0.5 (one hidden):
    # R = (1/4) [log 2 + 0.5] + (1/4) [3 * 0.5 - 0.5].
    loss = PositiveUnlabeledRisk(sparsity=0.5, surrogate="sigmoid")
    torch.testing.assert_close(loss(torch.zeros(4), torch.tensor([1.0, 0.0, 0.0, 0.0])),
                               torch.tensor((LOG2 + 0.5 + 1.0) / 4))
    # A huge object logit on an unlabeled element costs at most 1 there, not its logit.
    big = loss(torch.tensor([0.0, 1e4, 0.0, 0.0]), torch.tensor([1.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(big, torch.tensor((LOG2 + 0.5 + (1.0 + 0.5 + 0.5 - 0.5)) / 4))


@pytest.mark.parametrize("surrogate", ["log", "sigmoid"])
@pytest.mark.parametrize("gamma", [1.0, 0.0, 0.5])
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("overfit", [False, True])
def test_the_fused_two_class_path_equals_the_elementwise_terms(surrogate, gamma, binary, overfit):
    generator = torch.Generator().manual_seed(0)
    target = (torch.rand(2, 8, 8, generator=generator) < 0.2).long()
    margin = torch.randn(2, 8, 8, generator=generator)
    if overfit:  # annotated objects sure, every unlabeled element sure background: the negative risk is < 0
        margin = margin * 0.5 + torch.where(target > 0, 5.0, -6.0)
        criterion = PositiveUnlabeledRisk(sparsity=0.3, surrogate=surrogate)
        hidden = criterion._hidden(target > 0)
        negative = F.softplus(margin) if surrogate == "log" else torch.sigmoid(margin)
        assert (negative * (1 - (target > 0).float() * (1 + hidden))).sum() < 0
    _assert_fused_equals_elementwise(PositiveUnlabeledRisk(sparsity=0.3, surrogate=surrogate, gamma=gamma), margin,
                                     target, binary)


def _assert_fused_equals_elementwise(criterion: PositiveUnlabeledRisk, margin: torch.Tensor, target: torch.Tensor,
                                     binary: bool) -> None:
    """The fused path (``reduction="mean"``) and the element-wise terms (``"none"``, averaged) give the same value
    and gradients, for binary logits ``margin`` or two-class logits (0, margin)."""
    logits = margin.clone() if binary else torch.stack([torch.zeros_like(margin), margin], dim=1)
    if binary:
        target = target.float()
    values, grads = [], []
    for reduction in ("mean", "none"):
        x = logits.clone().requires_grad_()
        criterion.reduction = reduction
        loss = criterion(x, target).mean()
        loss.backward()
        values.append(loss.detach())
        grads.append(x.grad)
    torch.testing.assert_close(values[0], values[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_annotated_context_is_labelled_background_not_unlabeled():
    # One row of a 1x1x5 image, the middle pixel annotated, margin 1: pixels 1 and 3 are labelled background,
    # pixels 0 and 4 stay unlabeled. Sparsity 0.5: pi_a = 1/5, pi_u = (1/5)(1/2) / ((1/2)(4/5)) = 1/4, and the
    # annotated pixel stands for pi_u |U| / |A| = 1 hidden object (|U| = 4: the context is unannotated too).
    # Logits 0, log surrogate: every term is log 2, so
    # R = (1/5) [log2 + 1 * log2  +  2 log2 (context as background)]  +  (1/5) [2 log2 - 1 * log2] = 5 log2 / 5.
    logits, target = torch.zeros(1, 1, 5), torch.tensor([[[0.0, 0.0, 1.0, 0.0, 0.0]]])
    loss = PositiveUnlabeledRisk(sparsity=0.5, surrogate="log", annotation_margin=1)
    torch.testing.assert_close(loss(logits, target), torch.tensor(LOG2))
    # With the bounded sigmoid surrogate, a context pixel confident it is a nucleus (logit 3) costs its full
    # cross-entropy as background, softplus(3); unlabeled, it would cost sigmoid(3) at most 1. Sigmoid terms at
    # logit 0 are 0.5: R = (1/5) [log2 + 0.5 + softplus(3) + log2] + (1/5) [2 * 0.5 - 1 * 0.5].
    logits = torch.tensor([[[0.0, 3.0, 0.0, 0.0, 0.0]]])
    three = torch.tensor(3.0)
    expected = (2 * LOG2 + 0.5 + F.softplus(three) + 0.5) / 5
    torch.testing.assert_close(PositiveUnlabeledRisk(sparsity=0.5, annotation_margin=1)(logits, target), expected)
    # Without the context: R = (1/5) [log2 + 0.5] + (1/5) [0.5 + sigmoid(3) + 0.5 + 0.5 - 0.5].
    without = PositiveUnlabeledRisk(sparsity=0.5)(logits, target)
    torch.testing.assert_close(without, (LOG2 + 0.5 + 1.0 + torch.sigmoid(three)) / 5)
    # Margin 0 is the PU risk as before, and targets without two spatial axes have no context.
    torch.testing.assert_close(PositiveUnlabeledRisk(sparsity=0.5, annotation_margin=0)(logits, target), without)
    flat = torch.tensor([0.0, 3.0, 0.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])
    torch.testing.assert_close(PositiveUnlabeledRisk(sparsity=0.5, annotation_margin=1)(*flat),
                               PositiveUnlabeledRisk(sparsity=0.5)(*flat))


def test_annotated_context_without_hidden_objects_is_cross_entropy():
    # With no hidden objects (a fixed prior of 0) the context, labelled background, and the unlabeled pixels,
    # scored as background by the log surrogate, make cross-entropy; at sparsity 1 torch's own, as loss=ce.
    logits = torch.randn(2, 2, 7, 7)
    target = torch.zeros(2, 7, 7, dtype=torch.long)
    target[:, 2, 2] = 1
    risk = PositiveUnlabeledRisk(sparsity=0.3, prior=0.0, surrogate="log", annotation_margin=2)
    torch.testing.assert_close(risk(logits, target), F.cross_entropy(logits, target))
    torch.testing.assert_close(PositiveUnlabeledRisk(sparsity=1.0, annotation_margin=3)(logits, target),
                               F.cross_entropy(logits, target))


@pytest.mark.parametrize("surrogate", ["log", "sigmoid"])
@pytest.mark.parametrize("gamma", [1.0, 0.0])
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("overfit", [False, True])
def test_annotated_context_fused_path_equals_the_elementwise_terms(surrogate, gamma, binary, overfit):
    generator = torch.Generator().manual_seed(1)
    target = (torch.rand(2, 12, 12, generator=generator) < 0.05).long()
    margin = torch.randn(2, 12, 12, generator=generator)
    criterion = PositiveUnlabeledRisk(sparsity=0.3, surrogate=surrogate, gamma=gamma, annotation_margin=1)
    if overfit:
        margin = margin * 0.5 + torch.where(target > 0, 5.0, -6.0)
        annotated = target > 0
        unlabeled = 1.0 - annotated.float() - criterion._context(annotated).float()
        negative = F.softplus(margin) if surrogate == "log" else torch.sigmoid(margin)
        assert (negative * (unlabeled - annotated.float() * criterion._hidden(annotated))).sum() < 0
    _assert_fused_equals_elementwise(criterion, margin, target, binary)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_annotated_context_finite_for_huge_logits(dtype):
    generator = torch.Generator().manual_seed(2)
    target = (torch.rand(2, 8, 8, generator=generator) < 0.2).long()
    logits = (torch.randn(2, 2, 8, 8, generator=generator).sign() * 1e4).to(dtype).requires_grad_()
    for surrogate in SURROGATE_NAMES:
        logits.grad = None
        loss = PositiveUnlabeledRisk(sparsity=0.3, surrogate=surrogate, annotation_margin=2)(logits, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad.float()).all()


@pytest.mark.parametrize("margin", [-1, 1.5, True])
def test_annotated_context_margin_is_checked(margin):
    with pytest.raises(ValueError, match="annotation_margin"):
        PositiveUnlabeledRisk(annotation_margin=margin)
