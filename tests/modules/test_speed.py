"""Speed options: channels_last and torch.compile change the speed, not the results or the checkpoints."""

import pytest
import torch

from ece_lightning.modules import DetectionModule, SegmentationModule

UNET = {"name": "unet", "base_channels": 4, "depth": 2}


def _pair(module_cls=SegmentationModule, model=UNET, **speed):
    torch.manual_seed(0)
    plain = module_cls(model=model, loss={"name": "ce"})
    torch.manual_seed(0)
    fast = module_cls(model=model, loss={"name": "ce"}, speed=speed)
    return plain, fast


@pytest.mark.parametrize("module_cls, model", [(SegmentationModule, UNET),
                                               (DetectionModule, {"name": "yollo", "base_channels": 4, "depth": 2})])
def test_channels_last_gives_the_same_outputs_and_gradients(module_cls, model):
    plain, fast = _pair(module_cls, model, channels_last=True)
    conv = next(m for m in fast.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.rand(2, 3, 32, 32)
    out_plain, out_fast = plain(images), fast(images)
    torch.testing.assert_close(out_fast, out_plain, rtol=1e-4, atol=1e-5)
    out_plain.square().sum().backward()
    out_fast.square().sum().backward()
    reference = next(m for m in plain.net.modules() if isinstance(m, torch.nn.Conv2d)).weight.grad
    assert (conv.weight.grad - reference).norm() <= 1e-4 * reference.norm()  # equal up to summation order


def test_a_compiled_module_keeps_the_plain_state_dict():
    plain, fast = _pair(compile=True)
    assert list(fast.state_dict()) == list(plain.state_dict())  # no "_orig_mod." keys: checkpoints interchange
    assert fast.__dict__["_compiled_net"] is not None and "_compiled_net" not in dict(fast.named_children())


def test_unknown_compile_mode_is_named():
    with pytest.raises(ValueError, match="speed.compile_mode='fastest' must be one of default"):
        SegmentationModule(model=UNET, loss={"name": "ce"}, speed={"compile_mode": "fastest"})


@pytest.mark.slow
def test_compiled_network_trains_like_the_eager_one():
    plain, fast = _pair(compile=True)
    images = torch.rand(2, 3, 32, 32)
    out_plain, out_fast = plain(images), fast(images)
    torch.testing.assert_close(out_fast, out_plain, rtol=1e-4, atol=1e-5)
    out_plain.square().sum().backward()
    out_fast.square().sum().backward()
    for (name, a), b in zip(plain.net.named_parameters(), fast.net.parameters()):
        assert (b.grad - a.grad).norm() <= 1e-4 * a.grad.norm() + 1e-7, name
