"""foreground_from_logits: the validation's foreground decision equals argmax(dim=1) > 0."""

import pytest
import torch

from ece_lightning.postprocess.segmentation import foreground_from_logits


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_foreground_equals_argmax_above_background(classes):
    generator = torch.Generator().manual_seed(classes)
    logits = torch.randn(4, classes, 16, 24, generator=generator)
    logits[0, :, :4] = 0.5  # ties everywhere: argmax takes class 0
    logits[1, 0, :3] = logits[1, 1:, :3].amax(dim=0)  # background ties the best foreground class
    expected = logits.argmax(dim=1) > 0
    found = foreground_from_logits(logits)
    assert found.dtype == torch.bool and torch.equal(found, expected)
    assert 0 < int(found.sum()) < found.numel()
    assert not found[0, :4].any() and not found[1, :3].any()


def test_foreground_bfloat16_and_one_class_refused():
    logits = torch.randn(2, 2, 8, 8).to(torch.bfloat16)
    assert torch.equal(foreground_from_logits(logits), logits.argmax(dim=1) > 0)
    with pytest.raises(ValueError, match=">= 2 classes"):
        foreground_from_logits(torch.randn(2, 1, 8, 8))
