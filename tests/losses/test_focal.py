import math

import pytest
import torch
import torch.nn.functional as F

from ece_lightning.losses import FocalLoss, build_loss


def test_gamma_zero_without_alpha_is_cross_entropy():
    logits, target = torch.randn(3, 4, 5, 6), torch.randint(0, 4, (3, 5, 6))
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, target), F.cross_entropy(logits, target))
    binary, soft = torch.randn(4, 6, 6), torch.randint(0, 2, (4, 6, 6)).float()
    torch.testing.assert_close(FocalLoss(gamma=0.0)(binary, soft), F.binary_cross_entropy_with_logits(binary, soft))


def test_hand_computed_binary_and_multiclass_terms():
    # p = sigmoid(0) = 0.5 for a positive: (1 - 0.5)^2 * log 2, weighted alpha = 0.25.
    value = FocalLoss(gamma=2.0, alpha=0.25, reduction="none")(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(value, torch.tensor([0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2)]))
    # Three classes with probabilities (0.5, 0.25, 0.25), target 1: p_t = 0.25.
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    value = FocalLoss(gamma=1.0, reduction="none")(logits, torch.tensor([1]))
    torch.testing.assert_close(value, torch.tensor([0.75 * -math.log(0.25)]))


def test_easy_examples_weigh_less_than_hard_ones():
    loss = FocalLoss(gamma=2.0, reduction="none")
    easy, hard = loss(torch.tensor([4.0]), torch.tensor([1.0])), loss(torch.tensor([-1.0]), torch.tensor([1.0]))
    ce_easy, ce_hard = F.softplus(torch.tensor(-4.0)), F.softplus(torch.tensor(1.0))
    assert easy / ce_easy < 0.001 and hard / ce_hard > 0.5


@pytest.mark.parametrize("gamma", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("binary", [True, False])
def test_finite_gradients_for_huge_logits_and_fractional_gamma(gamma, binary):
    scale = torch.tensor([1e4, -1e4, 0.0, 30.0])
    if binary:
        logits, target = scale.clone().requires_grad_(), torch.tensor([1.0, 0.0, 1.0, 1.0])
    else:
        logits = torch.stack([-scale, scale], dim=1).clone().requires_grad_()
        target = torch.tensor([1, 0, 1, 1])
    loss = FocalLoss(gamma=gamma, alpha=0.25)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_focal_is_in_the_registry_and_checks_its_arguments():
    assert isinstance(build_loss("focal", gamma=1.0), FocalLoss)
    with pytest.raises(ValueError, match="gamma=-1"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="alpha=1.5"):
        FocalLoss(alpha=1.5)
    with pytest.raises(ValueError, match="do not fit target"):
        FocalLoss()(torch.randn(2, 3, 4, 4), torch.zeros(2, 5, 5, dtype=torch.long))
