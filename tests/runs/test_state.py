import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from ece_lightning.config import CONFIG_DIR
from ece_lightning.runs.state import config_fingerprint


def _config(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=["experiment=cpm15_benchmark", *overrides])


def test_a_key_added_switched_off_leaves_the_fingerprint_of_earlier_runs():
    """Runs finished before ``task.teacher`` existed still count as finished (a re-run sweep skips them)."""
    cfg = _config()
    assert cfg.task.teacher is None
    before_the_key = cfg.copy()
    with open_dict(before_the_key):
        del before_the_key.task["teacher"]
    assert config_fingerprint(cfg) == config_fingerprint(before_the_key)
    assert config_fingerprint(cfg, "v2") == config_fingerprint(before_the_key, "v2")
    with_teacher = _config("task.teacher={momentum: 0.99, threshold: 0.9, start: 0.3}")
    assert config_fingerprint(with_teacher) != config_fingerprint(cfg)


def test_the_point_label_keys_switched_off_leave_the_fingerprint_of_earlier_detection_runs():
    """Detection runs finished before ``dataset.point_labels`` and ``task.fixed_box_size`` existed still count."""
    cfg = _config("experiment=cpm15_detection")
    assert cfg.dataset.point_labels is None and cfg.task.fixed_box_size is None
    before_the_keys = cfg.copy()
    with open_dict(before_the_keys):
        del before_the_keys.dataset["point_labels"]
        del before_the_keys.task["fixed_box_size"]
    assert config_fingerprint(cfg) == config_fingerprint(before_the_keys)
    from_points = _config("experiment=cpm15_detection", "dataset.point_labels={box_size: 20}")
    assert config_fingerprint(from_points) != config_fingerprint(cfg)


@pytest.mark.parametrize("experiment", ["cpm15_benchmark", "cpm15_detection"])
def test_the_input_norm_switched_off_leaves_the_fingerprint_of_earlier_runs(experiment):
    """Runs finished before ``model.input_norm`` existed (then always off; the detector's came later than the
    U-Net's) still count as finished."""
    cfg = _config(f"experiment={experiment}", "model.input_norm=none")
    before_the_key = cfg.copy()
    with open_dict(before_the_key):
        del before_the_key.model["input_norm"]
    assert config_fingerprint(cfg) == config_fingerprint(before_the_key)
    assert config_fingerprint(cfg, "v2") == config_fingerprint(before_the_key, "v2")
    assert config_fingerprint(_config(f"experiment={experiment}", "model.input_norm=image")) != config_fingerprint(cfg)
    assert _config().model.input_norm == "image"  # the segmentation benchmark recipe's choice


def test_the_pu_annotation_margin_switched_off_leaves_the_fingerprint_of_earlier_pu_runs():
    """PU runs finished before ``loss.annotation_margin`` existed (then always off) still count as finished; ECE's
    own ``annotation_margin`` (0 in ``ece_reference``) is not touched."""
    cfg = _config("loss=pu")
    assert cfg.loss.annotation_margin == 0
    before_the_key = cfg.copy()
    with open_dict(before_the_key):
        del before_the_key.loss["annotation_margin"]
    assert config_fingerprint(cfg) == config_fingerprint(before_the_key)
    assert config_fingerprint(_config("loss=pu", "loss.annotation_margin=1")) != config_fingerprint(cfg)
    reference = _config("loss=ece_reference")
    assert reference.loss.annotation_margin == 0
    without = reference.copy()
    with open_dict(without):
        del without.loss["annotation_margin"]
    assert config_fingerprint(reference) != config_fingerprint(without)
