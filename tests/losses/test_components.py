"""The Obj/Background split of a loss's terms: same value and gradient as the loss itself, for every
registry entry, and the split computed right."""

import math

import pytest
import torch

from ece_lightning.losses import LOSSES, build_loss
from ece_lightning.losses.components import elementwise, reduce_like, split_by_annotation


def _case(binary: bool):
    generator = torch.Generator().manual_seed(0)
    if binary:
        logits = torch.randn(2, 8, 8, generator=generator) * 3
        target = (torch.rand(2, 8, 8, generator=generator) > 0.7).float()
    else:
        logits = torch.randn(2, 2, 8, 8, generator=generator) * 3
        target = (torch.rand(2, 8, 8, generator=generator) > 0.7).long()
    return logits, target


def _call(criterion, logits, target):
    if getattr(criterion, "requires_pixels", False):
        return criterion(logits, target, pixels=torch.arange(target.numel()).reshape(target.shape))
    return criterion(logits, target)


def _pair(name: str, **kwargs):
    """Two identical losses (ELR keeps state: each copy sees the batch once)."""
    losses = [build_loss(name, **kwargs) for _ in range(2)]
    for loss in losses:
        if hasattr(loss, "set_progress"):
            loss.set_progress(8, 12)  # past the warm-up: exclusion and the weight ramp are active
        if hasattr(loss, "allocate"):
            loss.allocate(128, 2)
    return losses


CASES = [(n, {}) for n in sorted(LOSSES)] + [
    ("ce", {"reduction": "sum"}), ("ece", {"variant": "reference", "sampling": "expected"})]
MULTICLASS_ONLY = [("ce", {"class_weights": [1.0, 3.0]})]


@pytest.mark.parametrize("name,kwargs,binary", [(n, k, b) for n, k in CASES for b in (False, True)]
                         + [(n, k, False) for n, k in MULTICLASS_ONLY])
def test_elementwise_terms_reduce_to_the_loss_with_the_same_gradient(name, kwargs, binary):
    logits, target = _case(binary)
    plain, tracked = _pair(name, **kwargs)
    x1, x2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    expected = _call(plain, x1, target)
    with elementwise(tracked):
        per_element = _call(tracked, x2, target)
    assert per_element.shape == target.shape
    assert tracked.reduction == plain.reduction  # restored
    value = reduce_like(tracked, per_element, x2, target)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    expected.backward()
    value.backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-4, atol=1e-7)


def test_elementwise_restores_the_reduction_after_an_error():
    loss = build_loss("ce")
    with pytest.raises(ValueError):
        with elementwise(loss):
            loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 5, 5, dtype=torch.long))
    assert loss.reduction == "mean"


def test_a_loss_without_reduction_is_named():
    with pytest.raises(TypeError, match="Identity"):
        with elementwise(torch.nn.Identity()):
            pass


def test_split_means_each_group_and_marks_an_empty_group_nan():
    terms = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    parts = split_by_annotation(terms, torch.tensor([[True, False], [False, True]]))
    assert parts["obj"].item() == pytest.approx(3.5) and parts["background"].item() == pytest.approx(2.5)
    parts = split_by_annotation(terms, torch.zeros(2, 2, dtype=torch.bool))
    assert math.isnan(parts["obj"].item()) and parts["background"].item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="3 elements for 4 loss terms"):
        split_by_annotation(terms, torch.zeros(3, dtype=torch.bool))
