"""Test-time augmentation: the mean probability over flipped / rotated copies, each mapped back to the input's
pixels, checked against the copies computed by hand; an equivariant network is left unchanged."""

import pytest
import torch
from torch import nn

from ece_lightning.inference.tta import TTA_MODES, TransformAverage, average_over_transforms, tta_transforms


def _net(out_channels: int = 2) -> nn.Module:
    torch.manual_seed(0)
    # 3x3 convs with random weights: not symmetric, so every flipped copy predicts something else
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, out_channels, 3, padding=1)).eval()


def _by_hand(net, images, mode):
    copies = [images, images.flip(-1), images.flip(-2), images.flip(-2, -1)]
    back = [lambda y: y, lambda y: y.flip(-1), lambda y: y.flip(-2), lambda y: y.flip(-2, -1)]
    if mode == "dihedral":
        copies += [c.transpose(-2, -1) for c in copies]
        back += [lambda y, b=b: b(y.transpose(-2, -1)) for b in back]
    return sum(b(torch.softmax(net(c), 1)) for c, b in zip(copies, back)) / len(copies)


@pytest.mark.parametrize("mode", ["flips", "dihedral"])
def test_the_mean_probability_of_the_copies_mapped_back(mode):
    net, images = _net(), torch.rand(2, 3, 16, 24)  # not square: a transposed copy must come back transposed
    with torch.no_grad():
        logits = average_over_transforms(net, images, mode)
        expected = _by_hand(net, images, mode)
        plain = torch.softmax(net(images), 1)
    assert logits.shape == (2, 2, 16, 24) and len(tta_transforms(mode)) == {"flips": 4, "dihedral": 8}[mode]
    torch.testing.assert_close(torch.softmax(logits, 1), expected, rtol=1e-5, atol=1e-6)
    assert (torch.softmax(logits, 1) - plain).abs().max() > 1e-3  # the copies did disagree


@pytest.mark.parametrize("mode", TTA_MODES)
def test_an_equivariant_network_is_left_as_it_is(mode):
    torch.manual_seed(0)
    pointwise = nn.Conv2d(3, 2, 1).eval()  # a 1x1 conv commutes with every flip and transpose
    images = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(torch.softmax(average_over_transforms(pointwise, images, mode), 1),
                                   torch.softmax(pointwise(images), 1), rtol=1e-5, atol=1e-6)


def test_none_is_the_network_itself_and_one_channel_averages_sigmoids():
    net, images = _net(1), torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(average_over_transforms(net, images, "none"), net(images))
        by_hand = (torch.sigmoid(net(images)) + torch.sigmoid(net(images.flip(-1))).flip(-1)
                   + torch.sigmoid(net(images.flip(-2))).flip(-2) + torch.sigmoid(net(images.flip(-2, -1))).flip(-2, -1)) / 4
        torch.testing.assert_close(torch.sigmoid(average_over_transforms(net, images, "flips")), by_hand)


def test_extreme_logits_stay_finite_and_keep_their_decision():
    class Saturated(nn.Module):
        def forward(self, x):  # +-1e4 logits: softmax probabilities of exactly 0 and 1 in float32
            return torch.cat([1e4 * (x[:, :1] - 0.5), -1e4 * (x[:, :1] - 0.5)], 1)

    images = torch.rand(1, 3, 8, 8)
    logits = TransformAverage(Saturated(), "dihedral")(images)
    assert torch.isfinite(logits).all()
    assert torch.equal(logits.argmax(1), Saturated()(images).argmax(1))


def test_a_bad_mode_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match="tta='rot45' is not one of none, flips, dihedral"):
        TransformAverage(_net(), "rot45")
    with pytest.raises(ValueError, match="tta='rot45' is not one of none, flips, dihedral"):
        average_over_transforms(_net(), torch.rand(1, 3, 8, 8), "rot45")
