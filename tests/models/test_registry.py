import pytest
import torch

from ece_lightning.models import MODELS, YOLLO, UNet, build_model
from ece_lightning.registry import RegistryError

SMALL = {"unet": {"base_channels": 4, "depth": 2}, "yollo": {"base_channels": 4, "depth": 2}}
# Output of a (2, 3, 32, 48) input: segmentation keeps the size, detection gives a 5-channel grid.
EXPECTED_SHAPE = {"segmentation": (2, 2, 32, 48), "detection": (2, 5, 8, 12)}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_has_its_task_shape_and_trains(name):
    model = build_model(name, **SMALL[name])
    out = model(torch.rand(2, 3, 32, 48))
    assert out.shape == EXPECTED_SHAPE[MODELS[name].task]
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_unknown_model_lists_the_registry():
    with pytest.raises(RegistryError, match="model.name='resnet' is not registered; valid: unet, yollo"):
        build_model("resnet")


@pytest.mark.parametrize("depth, channels", [(1, 4), (4, 2)])
def test_unet_width_and_depth(depth, channels):
    model = UNet(base_channels=channels, depth=depth, num_classes=3)
    assert len(model.encoders) == depth and len(model.decoders) == depth
    assert model.bottleneck[0].out_channels == channels * 2**depth
    assert model(torch.rand(1, 3, 2**depth * 2, 2**depth * 2)).shape[1] == 3


def test_unet_has_no_normalisation_by_default_and_the_original_layers():
    model = UNet(base_channels=4, depth=2)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for m in model.modules())
    assert [type(m).__name__ for m in model.encoders[0]] == ["Conv2d", "ReLU", "Conv2d", "ReLU"]
    assert model.encoders[0][0].bias is not None


@pytest.mark.parametrize("norm, kind", [("batch", torch.nn.BatchNorm2d), ("group", torch.nn.GroupNorm)])
def test_unet_norm_follows_every_3x3_convolution(norm, kind):
    model = UNet(base_channels=4, depth=2, norm=norm)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert sum(isinstance(m, kind) for m in model.modules()) == len(convs) == 2 * (2 * 2 + 1)
    assert all(conv.bias is None for conv in convs)
    out = model(torch.rand(2, 3, 16, 16))
    assert out.shape == (2, 2, 16, 16)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unet_uses_transposed_convolutions_and_max_pooling():
    model = UNet(base_channels=4, depth=2)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"ConvTranspose2d", "MaxPool2d"} <= kinds
    assert "Upsample" not in kinds


def test_unet_rejects_sizes_it_cannot_pool():
    with pytest.raises(ValueError, match="divisible by 8"):
        UNet(base_channels=2, depth=3)(torch.rand(1, 3, 20, 24))


@pytest.mark.parametrize("model_class", [UNet, YOLLO])
def test_image_input_norm_makes_the_output_blind_to_each_images_contrast_and_brightness(model_class):
    torch.manual_seed(0)
    model = model_class(base_channels=4, depth=2, input_norm="image").eval()
    image = torch.rand(2, 3, 32, 32)
    # A faint copy of the first image, another gain and offset per channel for the second one.
    gain = torch.tensor([[0.3, 0.5, 0.4], [1.5, 1.2, 2.0]]).view(2, 3, 1, 1)
    offset = torch.tensor([[0.5, 0.4, 0.45], [-0.2, 0.0, -0.5]]).view(2, 3, 1, 1)
    plain = model_class(base_channels=4, depth=2).eval()
    with torch.no_grad():
        moved = (model(image) - model(image * gain + offset)).abs().max()
        moved_plain = (plain(image) - plain(image * gain + offset)).abs().max()
        assert moved < 2e-4 and moved_plain > 20 * moved  # only eps (a std floor) lets the faint copy differ
        assert torch.isfinite(model(torch.full((1, 3, 16, 16), 0.5))).all()  # a blank tile stays finite
    # Nothing to learn or to store: checkpoints of either setting share their keys.
    assert model.state_dict().keys() == model_class(base_channels=4, depth=2).state_dict().keys()
    with pytest.raises(ValueError, match="input_norm='batch' is not one of none, image"):
        model_class(input_norm="batch")


@pytest.mark.parametrize("bad", [{"depth": 0}, {"base_channels": 0}, {"norm": "layer"}, {"input_norm": "batch"}])
def test_unet_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        UNet(**bad)


def test_yollo_is_seven_convolutions_with_batch_norm_and_max_pooling():
    model = YOLLO(base_channels=4, depth=3)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 7 and convs[-1].kernel_size == (1, 1) and convs[-1].out_channels == 5
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 6
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) == 3
    assert [c.out_channels for c in convs[:6]] == [4, 8, 16, 32, 32, 32]
    assert model.stride == 8 and model(torch.rand(1, 3, 64, 32)).shape == (1, 5, 8, 4)


def test_yollo_starts_at_its_prior_objectness():
    torch.manual_seed(0)
    model = YOLLO(base_channels=4, depth=2, prior_probability=0.05).eval()
    scores = torch.sigmoid(model(torch.rand(2, 3, 32, 32))[:, 0])
    assert scores.mean().item() == pytest.approx(0.05, abs=0.03)


@pytest.mark.parametrize("bad, name", [({"depth": 0}, "depth"), ({"depth": 6}, "depth"), ({"anchor": 0}, "anchor"),
                                       ({"prior_probability": 1.0}, "prior_probability")])
def test_yollo_rejects_bad_arguments(bad, name):
    with pytest.raises(ValueError, match=name):
        YOLLO(**bad)


def test_yollo_rejects_sizes_off_its_grid():
    with pytest.raises(ValueError, match="divisible by the stride 8"):
        YOLLO(base_channels=2, depth=3)(torch.rand(1, 3, 20, 24))
