"""ExclusiveCrossEntropy: reductions to simpler losses, reference parity, numerical safety, schedules."""

import math

import pytest
import torch
import torch.nn.functional as F

from ece_lightning.losses import ExclusiveCrossEntropy, SigmoidSchedule, build_loss

ALL_OFF = {"exclusion": False, "negative_sampling": False, "focal": False, "annotation_margin": 0}


def _multiclass(classes=2, shape=(3, 10, 12), scale=3.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(shape[0], classes, *shape[1:], generator=generator)).requires_grad_()
    target = torch.randint(0, classes, shape, generator=generator)
    target[:, :4] = 0  # plenty of unannotated elements
    return logits, target


def _binary(shape=(4, 50), seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(shape, generator=generator)).requires_grad_()
    target = (torch.rand(shape, generator=generator) < 0.3).float()
    return logits, target


@pytest.mark.parametrize("classes", [2, 3])
def test_all_components_off_is_cross_entropy(classes):
    logits, target = _multiclass(classes)
    for reduction in ("mean", "sum", "none"):
        ours = ExclusiveCrossEntropy(**ALL_OFF, reduction=reduction)(logits, target)
        torch.testing.assert_close(ours, F.cross_entropy(logits, target, reduction=reduction))


def test_all_components_off_is_binary_cross_entropy():
    logits, target = _binary()
    torch.testing.assert_close(ExclusiveCrossEntropy(**ALL_OFF)(logits, target),
                               F.binary_cross_entropy_with_logits(logits, target))
    torch.testing.assert_close(ExclusiveCrossEntropy(**ALL_OFF)(logits.unsqueeze(1), target),
                               F.binary_cross_entropy_with_logits(logits, target))


@pytest.mark.parametrize("classes", [2, 3])
def test_negative_sampling_alone_weights_unannotated_terms(classes):
    logits, target = _multiclass(classes)
    loss = ExclusiveCrossEntropy(exclusion=False, focal=False, negative_rate=0.25, annotation_margin=0,
                                 reduction="none")
    ce = F.cross_entropy(logits, target, reduction="none")
    torch.testing.assert_close(loss(logits, target), torch.where(target > 0, ce, 0.25 * ce))


def test_bernoulli_sampling_keeps_about_the_rate():
    logits = torch.zeros(1, 2, 200, 200)
    target = torch.zeros(1, 200, 200, dtype=torch.long)
    loss = ExclusiveCrossEntropy(exclusion=False, focal=False, negative_rate=0.3, sampling="bernoulli",
                                 reduction="none")
    kept = (loss(logits, target) > 0).float().mean().item()
    assert kept == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("classes", [2, 3])
def test_exclusion_alone_drops_unannotated_terms_believed_to_be_objects(classes):
    logits, target = _multiclass(classes)
    loss = ExclusiveCrossEntropy(negative_sampling=False, focal=False, exclusion_threshold=0.7, annotation_margin=0,
                                 reduction="none")
    ce = F.cross_entropy(logits, target, reduction="none")
    p_obj = 1 - logits.softmax(1)[:, 0]
    expected = torch.where(target > 0, ce, torch.where(p_obj > 0.7, torch.zeros_like(ce), ce))
    torch.testing.assert_close(loss(logits, target), expected)
    soft = ExclusiveCrossEntropy(negative_sampling=False, focal=False, exclusion_threshold=0.7,
                                 excluded_weight=0.1, annotation_margin=0, reduction="none")
    torch.testing.assert_close(soft(logits, target), torch.where(target > 0, ce, torch.where(p_obj > 0.7, 0.1 * ce, ce)))


def test_exclusion_is_scale_invariant_in_probability():
    """Doubling the logits changes which terms are excluded only through the probabilities."""
    logits, target = _multiclass(2)
    loss = ExclusiveCrossEntropy(negative_sampling=False, focal=False, exclusion_threshold=0.5, annotation_margin=0,
                                 reduction="none")
    dropped = (loss(logits, target) == 0) & (target == 0)
    dropped_scaled = (loss(4 * logits, target) == 0) & (target == 0)
    assert torch.equal(dropped, dropped_scaled)  # p_obj > 0.5 <=> margin > 0, at any scale


@pytest.mark.parametrize("classes", [2, 3])
def test_focal_alone_reweights_unannotated_terms(classes):
    logits, target = _multiclass(classes)
    loss = ExclusiveCrossEntropy(exclusion=False, negative_sampling=False, focal=True, focal_alpha=0.5,
                                 focal_gamma=2.0, annotation_margin=0, reduction="none")
    ce = F.cross_entropy(logits, target, reduction="none")
    p_obj = 1 - logits.softmax(1)[:, 0]
    torch.testing.assert_close(loss(logits, target), torch.where(target > 0, ce, 0.5 * p_obj**2 * ce))


def _reference_formula(logits, target, epoch, uniform):
    """The authors' formula written out directly (ece-loss 1.0.0), for bounded inputs."""
    ce = F.cross_entropy(logits, target, reduction="none")
    unannotated = (target == 0).float()
    rate = 0.5 / (1 + math.exp(-(epoch - 150) / 10))
    tau = 0.5 / (1 + math.exp(-(epoch - 50) / 10))
    top2 = logits.topk(2, dim=1).values
    confidence = (top2[:, 0] - top2[:, 1]).abs()
    sampled = (uniform <= rate).float() * (confidence <= tau).float()
    focal = 0.2 * (1 - torch.exp(-ce)) ** 0.1 * ce
    return (1 - unannotated) * ce + unannotated * sampled * focal


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("epoch", [0, 50, 140, 160, 299])
def test_reference_variant_matches_the_formula_element_by_element(classes, epoch):
    logits, target = _multiclass(classes, scale=0.4, seed=epoch)
    loss = build_loss("ece", variant="reference", reduction="none")
    loss.set_progress(epoch, 300)
    torch.manual_seed(11)
    ours = loss(logits, target)
    torch.manual_seed(11)
    uniform = torch.rand(target.shape)
    expected = _reference_formula(logits, target, epoch, uniform)
    torch.testing.assert_close(ours, expected)
    grad_ours, = torch.autograd.grad(ours.sum(), logits)
    grad_expected, = torch.autograd.grad(expected.sum(), logits)
    torch.testing.assert_close(grad_ours, grad_expected)


@pytest.mark.parametrize("epoch", [10, 60, 200])
def test_reference_variant_matches_the_authors_package(epoch):
    ece_loss = pytest.importorskip("ece_loss", reason="ece-loss==1.0.0 is installed by `make test` (--no-deps)")
    logits, target = _multiclass(2, scale=0.4, seed=epoch)
    package = ece_loss.ExclusiveCrossEntropyLoss(reduction="none")
    ours = build_loss("ece", variant="reference", reduction="none")
    ours.set_progress(epoch, 300)
    torch.manual_seed(5)
    expected = package(logits, target, epoch)
    torch.manual_seed(5)
    torch.testing.assert_close(ours(logits, target), expected)


def test_the_package_formula_itself_makes_nan_gradients_where_ours_stays_finite():
    """The anchor's defect, shown on the formula: (1 - exp(-CE))^0.1 has an infinite slope at CE -> 0."""
    logits = torch.tensor([[[40.0], [-40.0]]], requires_grad=True)  # confident background, unannotated
    target = torch.zeros(1, 1, dtype=torch.long)
    expected = _reference_formula(logits, target, 299, torch.zeros(1, 1))
    grad_formula, = torch.autograd.grad(expected.sum(), logits)
    assert torch.isnan(grad_formula).any()
    loss = build_loss("ece", variant="reference", reduction="sum")
    loss.set_progress(299, 300)
    grad, = torch.autograd.grad(loss(logits, target), logits)
    assert torch.isfinite(grad).all()


VARIANT_SETTINGS = [
    {},
    {"variant": "reference"},
    {"focal": True, "focal_alpha": 0.2, "focal_gamma": 0.1},
    {"sampling": "bernoulli", "excluded_weight": 0.1},
]


@pytest.mark.parametrize("settings", VARIANT_SETTINGS)
@pytest.mark.parametrize("classes", [1, 2, 3])
@pytest.mark.parametrize("autocast", [False, True])
def test_finite_loss_and_gradients_at_extreme_logits(settings, classes, autocast):
    generator = torch.Generator().manual_seed(0)
    shape = (2, 16, 16)
    if classes == 1:
        target = (torch.rand(shape, generator=generator) < 0.3).float()
        signs = torch.randint(0, 2, (2, 1, 16, 16), generator=generator) * 2 - 1
    else:
        target = torch.randint(0, classes, shape, generator=generator)
        signs = torch.randint(0, 2, (2, classes, 16, 16), generator=generator) * 2 - 1
    for magnitude in (1e4, 1e2, 17.0, 0.0):
        base = (magnitude * signs.float()).requires_grad_()
        loss = ExclusiveCrossEntropy(**settings)
        loss.set_progress(250, 300)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = base * 1.0 if not autocast else (base.to(torch.bfloat16) * 1.0)
            value = loss(logits, target)
        value.backward()
        assert torch.isfinite(value), (magnitude, value)
        assert torch.isfinite(base.grad).all(), magnitude


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reduction_on_image_shaped_binary_targets(reduction):
    logits, target = torch.randn(2, 1, 8, 8), (torch.rand(2, 8, 8) > 0.5).float()
    out = ExclusiveCrossEntropy(reduction=reduction)(logits, target)
    assert out.shape == ((2, 8, 8) if reduction == "none" else ())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="variant='paper'"):
        ExclusiveCrossEntropy(variant="paper")
    with pytest.raises(ValueError, match="sampling='uniform'"):
        ExclusiveCrossEntropy(sampling="uniform")
    with pytest.raises(ValueError, match="excluded_weight=2"):
        ExclusiveCrossEntropy(excluded_weight=2)
    with pytest.raises(ValueError, match="unknown schedule field"):
        ExclusiveCrossEntropy(negative_rate={"start": 0.1, "stop": 0.5})
    with pytest.raises(ValueError, match="do not fit target"):
        ExclusiveCrossEntropy()(torch.randn(2, 2, 4, 4), torch.zeros(2, 3, 3, dtype=torch.long))


# --- schedules -------------------------------------------------------------------------------------

def test_paper_schedules_in_epochs():
    rate = SigmoidSchedule(0.0, 0.5, midpoint=150, width=10, unit="epochs")
    tau = SigmoidSchedule(0.0, 0.5, midpoint=50, width=10, unit="epochs")
    assert rate(150) == pytest.approx(0.25) and tau(50) == pytest.approx(0.25)
    assert rate(0) == pytest.approx(0.5 / (1 + math.exp(15)))
    assert tau(299) == pytest.approx(0.5, abs=1e-9)
    assert rate(160) == pytest.approx(0.5 / (1 + math.exp(-1)))


def test_fraction_schedules_have_the_same_shape_at_any_length():
    schedule = SigmoidSchedule(0.1, 0.5, midpoint=0.5, width=1 / 30, unit="fraction")
    for epoch in (0, 10, 15, 20, 29):
        assert schedule(epoch, 30) == pytest.approx(schedule(10 * epoch, 300))
    assert schedule(15, 30) == pytest.approx(0.3)


def test_step_schedule_and_constant():
    step = SigmoidSchedule(1.0, 0.5, midpoint=1 / 6, width=0.0)
    assert [step(e, 12) for e in (0, 1, 2, 11)] == [1.0, 1.0, 0.5, 0.5]
    assert SigmoidSchedule.build(0.1)(123, 300) == 0.1


def test_fraction_schedule_without_training_length_is_explained():
    with pytest.raises(ValueError, match="max_epochs"):
        SigmoidSchedule(0.0, 1.0, midpoint=0.5, width=0.1)(3, None)


def test_default_ece_follows_its_schedule():
    loss = build_loss("ece")
    assert loss.set_progress(0, 30) == {"exclusion_threshold": 1.0, "negative_rate": pytest.approx(0.1, abs=1e-3)}
    assert loss.set_progress(5, 30)["exclusion_threshold"] == 0.5
    assert loss.set_progress(15, 30)["negative_rate"] == pytest.approx(0.3)
    assert loss.set_progress(29, 30)["negative_rate"] == pytest.approx(0.5, abs=1e-3)


def test_annotated_context_makes_nearby_unannotated_pixels_plain_negatives():
    logits = torch.randn(1, 2, 9, 9)
    target = torch.zeros(1, 9, 9, dtype=torch.long)
    target[0, 4, 4] = 1
    loss = ExclusiveCrossEntropy(exclusion=False, focal=False, negative_rate=0.1, annotation_margin=2,
                                 reduction="none")
    ce = F.cross_entropy(logits, target, reduction="none")
    near = torch.zeros(1, 9, 9, dtype=torch.bool)
    near[0, 2:7, 2:7] = True
    torch.testing.assert_close(loss(logits, target), torch.where(near, ce, 0.1 * ce))


def test_annotated_context_ignores_targets_without_two_spatial_dimensions():
    logits, target = _binary()
    loss = ExclusiveCrossEntropy(exclusion=False, focal=False, negative_rate=0.1, annotation_margin=2)
    reference = ExclusiveCrossEntropy(exclusion=False, focal=False, negative_rate=0.1)
    torch.testing.assert_close(loss(logits, target), reference(logits, target))


@pytest.mark.parametrize("entry, variant", [("ece", "ece"), ("ece_reference", "reference")])
def test_config_entries_spell_out_the_variant_defaults(entry, variant):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ece_lightning.config import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = OmegaConf.to_container(compose(config_name="train", overrides=[f"loss={entry}"]).loss)
    from_config, from_code = build_loss(**cfg), build_loss("ece", variant=variant)
    for attribute in ("exclusion", "negative_sampling", "focal", "sampling", "focal_alpha", "focal_gamma",
                      "excluded_weight", "annotation_margin", "exclusion_schedule", "negative_schedule"):
        assert getattr(from_config, attribute) == getattr(from_code, attribute), attribute


@pytest.mark.parametrize("classes", [1, 2])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fused_path_equals_the_per_element_path(classes, reduction):
    """The fused two-class/binary path (reduction mean/sum) gives the per-element path's value and gradient."""
    if classes == 1:
        logits, target = _binary(shape=(3, 12, 14))
    else:
        logits, target = _multiclass(2)
    loss = ExclusiveCrossEntropy(negative_rate=0.3, exclusion_threshold=0.6, excluded_weight=0.05, reduction=reduction)
    per_element = ExclusiveCrossEntropy(negative_rate=0.3, exclusion_threshold=0.6, excluded_weight=0.05,
                                        reduction="none")
    fused = loss(logits, target)
    expected = per_element(logits, target)
    expected = expected.mean() if reduction == "mean" else expected.sum()
    torch.testing.assert_close(fused, expected)
    torch.testing.assert_close(torch.autograd.grad(fused, logits)[0], torch.autograd.grad(expected, logits)[0])


def test_annotated_context_reaches_margin_pixels_in_both_axes():
    loss = ExclusiveCrossEntropy(annotation_margin=2)
    annotated = torch.zeros(1, 7, 7, dtype=torch.bool)
    annotated[0, 0, 6] = True
    near = loss._annotated_context(annotated)
    expected = torch.zeros_like(annotated)
    expected[0, 0:3, 4:7] = True
    assert torch.equal(near, expected)
