"""foreground_from_logits: the validation's foreground decision equals argmax(dim=1) > 0 at the default threshold,
and 1 - P(background) > t at any other; the postprocess checks name the threshold."""

import pytest
import torch

from ece_lightning.postprocess.segmentation import (
    check_postprocess,
    foreground_from_logits,
    foreground_margin,
    split_threshold,
)


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
    with pytest.raises(ValueError, match=">= 2 classes"):
        foreground_from_logits(torch.randn(2, 1, 8, 8), threshold=0.7)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("threshold", [0.2, 0.7, 0.95])
def test_a_threshold_compares_the_foreground_probability(classes, threshold):
    logits = torch.randn(3, classes, 20, 20, generator=torch.Generator().manual_seed(7)) * 3
    expected = 1.0 - torch.softmax(logits.double(), dim=1)[:, 0] > threshold
    assert torch.equal(foreground_from_logits(logits, threshold), expected)
    assert 0 < int(expected.sum()) < expected.numel()
    # the margin is the log-odds of foreground: sigmoid(margin) is that probability
    torch.testing.assert_close(torch.sigmoid(foreground_margin(logits.double())),
                               1.0 - torch.softmax(logits.double(), dim=1)[:, 0])


def test_a_higher_threshold_keeps_a_subset():
    logits = torch.randn(2, 2, 32, 32, generator=torch.Generator().manual_seed(3))
    low, high = foreground_from_logits(logits, 0.3), foreground_from_logits(logits, 0.8)
    assert bool((high <= low).all()) and int(high.sum()) < int(low.sum())
    # two classes: the default's argmax rule is the 0.5 probability rule
    assert torch.equal(foreground_from_logits(logits), foreground_margin(logits) > 0)


def test_postprocess_threshold_is_checked_and_split_off():
    checked = check_postprocess({"threshold": 0.6, "method": "watershed", "min_distance": 8})
    assert checked["threshold"] == 0.6
    threshold, options = split_threshold(checked)
    assert threshold == 0.6 and options == {"method": "watershed", "min_distance": 8}
    assert split_threshold({"min_size": 3}) == (0.5, {"min_size": 3})
    for bad in (0, 1, 1.5, -0.1, True, "high"):
        with pytest.raises(ValueError, match=r"task\.postprocess\.threshold=.* must be a number in \(0, 1\)"):
            check_postprocess({"threshold": bad})
    with pytest.raises(ValueError, match="valid: threshold, method, min_size, min_distance"):
        check_postprocess({"markers": 3})
