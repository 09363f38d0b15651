import pytest
import torch

from ece_lightning.models import MODELS, UNet, build_model

SMALL = {"unet": {"base_channels": 4, "depth": 2}}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_keeps_the_input_size_and_trains(name):
    model = build_model(name, **SMALL[name])
    x = torch.rand(2, 3, 32, 48)
    out = model(x)
    assert out.shape == (2, 2, 32, 48)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_unknown_model_lists_the_registry():
    with pytest.raises(KeyError, match="registered models: unet"):
        build_model("resnet")


@pytest.mark.parametrize("depth, channels", [(1, 4), (4, 2)])
def test_unet_width_and_depth(depth, channels):
    model = UNet(base_channels=channels, depth=depth, num_classes=3)
    assert len(model.encoders) == depth and len(model.decoders) == depth
    assert model.bottleneck[0].out_channels == channels * 2**depth
    assert model(torch.rand(1, 3, 2**depth * 2, 2**depth * 2)).shape[1] == 3


def test_unet_uses_transposed_convolutions_and_max_pooling():
    model = UNet(base_channels=4, depth=2)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"ConvTranspose2d", "MaxPool2d"} <= kinds
    assert "Upsample" not in kinds


def test_unet_rejects_sizes_it_cannot_pool():
    with pytest.raises(ValueError, match="divisible by 8"):
        UNet(base_channels=2, depth=3)(torch.rand(1, 3, 20, 24))


@pytest.mark.parametrize("bad", [{"depth": 0}, {"base_channels": 0}])
def test_unet_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        UNet(**bad)
