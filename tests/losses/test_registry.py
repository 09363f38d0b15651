import pytest
import torch
import torch.nn.functional as F

from ece_lightning.losses import LOSSES, build_loss
from ece_lightning.registry import RegistryError


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_loss_honours_reduction_on_image_shaped_targets(name, reduction):
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    target = torch.randint(0, 2, (2, 8, 8))
    criterion = build_loss(name, reduction=reduction)
    if getattr(criterion, "requires_pixels", False):  # per-pixel state (ELR): ids of 128 training pixels
        criterion.allocate(128, 2)
        loss = criterion(logits, target, pixels=torch.arange(128).reshape(2, 8, 8))
    else:
        loss = criterion(logits, target)
    assert loss.shape == (() if reduction != "none" else target.shape)
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_unknown_reduction_is_named(name):
    with pytest.raises(ValueError, match="reduction='avg'"):
        build_loss(name, reduction="avg")


def test_ce_equals_torch_cross_entropy():
    logits, target = torch.randn(3, 4, 5, 6), torch.randint(0, 4, (3, 5, 6))
    torch.testing.assert_close(build_loss("ce")(logits, target), F.cross_entropy(logits, target))
    weights = [0.5, 1.0, 2.0, 1.0]
    torch.testing.assert_close(build_loss("ce", class_weights=weights)(logits, target),
                               F.cross_entropy(logits, target, weight=torch.tensor(weights)))


def test_ce_binary_logits_with_float_targets():
    logits, target = torch.randn(4, 1, 6), torch.rand(4, 6)
    torch.testing.assert_close(build_loss("ce")(logits, target),
                               F.binary_cross_entropy_with_logits(logits.squeeze(1), target))


def test_ce_shape_mismatch_is_explained():
    with pytest.raises(ValueError, match="do not fit target"):
        build_loss("ce")(torch.randn(2, 2, 4, 4), torch.zeros(2, 5, 5, dtype=torch.long))


def test_unknown_loss_lists_the_registry():
    with pytest.raises(RegistryError, match="loss.name='dice' is not registered; valid: ce, ece, elr, focal"):
        build_loss("dice")
