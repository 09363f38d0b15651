"""Every config group entry composes and validates; bad values and typos fail with their name."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from ece_lightning.config import CONFIG_DIR, ConfigError
from ece_lightning.runs.assembly import validate_config

GROUPS = ["dataset", "augment", "task", "model", "loss", "trainer", "logger", "callbacks", "paths", "experiment"]


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def _entries():
    for group in GROUPS:
        for path in sorted(Path(CONFIG_DIR, group).glob("*.yaml")):
            yield group, path.stem


def test_every_group_has_entries():
    assert {group for group, _ in _entries()} == set(GROUPS)


# A task and its model are chosen together (a mismatch is a ConfigError, tested below).
# Points-only datasets train detection and are scored by point F1.
COMPANIONS = {"task=detection": ["model=yollo"], "model=yollo": ["task=detection"],
              **{f"dataset={points}": ["task=detection", "model=yollo", "task.metrics.point_radius=8"]
                 for points in ("crchisto", "til")}}


@pytest.mark.parametrize("group, entry", list(_entries()))
def test_every_entry_composes_and_validates(group, entry, tmp_path):
    overrides = [f"{group}={entry}", *COMPANIONS.get(f"{group}={entry}", [])]
    cfg = _compose(*overrides)
    if group == "dataset" and cfg.dataset.get("root") and not Path(cfg.dataset.root).is_dir():
        cfg = _compose(*overrides, f"dataset.root={tmp_path}")  # datasets we do not hold
    validate_config(cfg)
    # Every interpolation resolves except Hydra's runtime output folder (set only inside a job).
    plain = OmegaConf.to_container(cfg, resolve=False)
    assert plain["sparsity"] == cfg.sparsity


def test_defaults_are_the_paper_hyper_parameters():
    cfg = _compose()
    assert cfg.dataset.name == "synthetic" and cfg.loss.name == "ce" and cfg.model.name == "unet"
    assert cfg.model.base_channels == 64 and cfg.model.depth == 4
    assert cfg.optimizer.lr == 1e-4 and list(cfg.optimizer.betas) == [0.9, 0.999]
    assert cfg.trainer.max_epochs == 300
    assert cfg.dataset.sparsity == cfg.sparsity == 1.0


def test_top_level_sparsity_and_seed_reach_the_dataset():
    cfg = _compose("sparsity=0.3", "seed=4")
    assert cfg.dataset.sparsity == 0.3 and cfg.dataset.sparsify_seed == 4


def test_demo_experiment_is_a_narrow_cpu_sweep():
    cfg = _compose("experiment=demo")
    assert cfg.name == "demo" and cfg.trainer.accelerator == "cpu" and cfg.model.base_channels == 8
    assert cfg.model.norm == "batch" and cfg.scheduler.name == "onecycle"
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        hydra_cfg = compose(config_name="train", overrides=["experiment=demo"], return_hydra_config=True).hydra
    assert {"loss", "sparsity"} <= set(hydra_cfg.sweeper.params)
    assert hydra_cfg.launcher.n_jobs == 2  # the two jobs of a pair at once, one thread each


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1", "'a lot'"])
def test_out_of_range_sparsity_names_the_key(value):
    with pytest.raises(ConfigError, match=r"sparsity=.* must lie in \(0, 1\]"):
        validate_config(_compose(f"sparsity={value}"))


@pytest.mark.parametrize("override, message", [
    ("seed=-3", "seed=-3 must be an integer >= 0"),
    ("optimizer.lr=0", "optimizer.lr=0 must be a number > 0"),
    ("optimizer.betas=[0.9,1.0]", "optimizer.betas=[0.9, 1.0] must be two numbers in [0, 1)"),
    ("dataset.batch_size=0", "dataset.batch_size=0 must be an integer >= 1"),
    ("dataset.image_size=100", "dataset.image_size=100 must be divisible by 2**model.depth = 16"),
    ("model.num_classes=1", "model.num_classes=1 must be an integer >= 2"),
    ("task.postprocess.method=otsu", "task.postprocess.method='otsu' is not registered; valid: components, watershed"),
    ("model.name=resnet", "model.name='resnet' is not registered; valid: unet"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 must be an integer >= 1"),
    ("scheduler.name=step", "scheduler.name='step' is not registered; valid: cosine, none, onecycle"),
    ("+scheduler.warmup=0.5", "unknown key(s) scheduler.warmup; valid: "),
    ("model.norm=layer", "model.norm='layer' is not one of none, batch, group"),
    ("+sparsty=0.3", "unknown top-level key(s) sparsty"),
])
def test_bad_values_are_named(override, message):
    with pytest.raises(ConfigError) as info:
        validate_config(_compose(override))
    assert message in str(info.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as info:
        validate_config(_compose("sparsity=2", "seed=-1"))
    assert "sparsity=2" in str(info.value) and "seed=-1" in str(info.value)


def test_typo_in_a_key_fails_at_compose_time_with_its_name():
    with pytest.raises(ConfigCompositionException, match="widht"):
        _compose("model.widht=8")
    with pytest.raises(ConfigCompositionException, match="sparsty"):
        _compose("sparsty=0.3")


def test_unknown_group_entry_lists_the_valid_ones():
    with pytest.raises(Exception, match=r"cee(.|\n)*Available options(.|\n)*ce"):
        _compose("loss=cee")


def test_every_reader_format_has_a_dataset_config():
    from ece_lightning.data.readers import FORMATS

    formats = {_compose(f"dataset={entry}").dataset.get("format") for group, entry in _entries() if group == "dataset"}
    assert set(FORMATS) <= formats


def test_unknown_format_and_split_method_are_named():
    cfg = _compose("dataset=cpm15", "dataset.format=cpm16", "dataset.split.method=slides")
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert "dataset.format='cpm16' is not registered" in str(info.value)
    assert "dataset.split.method='slides' must be one of auto, given, random" in str(info.value)


@pytest.mark.parametrize("overrides, message", [
    (["task=detection"], "model.name='unet' is a segmentation model but task.name='detection'; use model=yollo"),
    (["model=yollo"], "model.name='yollo' is a detection model but task.name='segmentation'; use model=unet"),
    (["task=detection", "model=yollo", "model.depth=6"], "model.depth=6 must be an integer in 1..5"),
    (["task=detection", "model=yollo", "model.depth=3", "dataset.image_size=100"],
     "dataset.image_size=100 must be divisible by 2\\*\\*model.depth = 8"),
    (["task=detection", "model=yollo", "task.postprocess.nms_iou=1.5"], "task.postprocess.nms_iou=1.5 must lie in"),
    (["task=detection", "model=yollo", "task.loss_weights.lambda_background=-1"],
     "task.loss_weights.lambda_background=-1 must be a number >= 0"),
    (["task=detection", "model=yollo", "task.loss_weights.normalize=images"], "normalize='images' must be cells or groups"),
    (["task=detection", "model=yollo", "task.postprocess.max_detections=-1"], "max_detections=-1 must be an integer"),
    (["task=detection", "model=yollo", "+task.postprocess.nms=0.3"], "unknown key\\(s\\) task.postprocess.nms; valid"),
    (["task=detection", "model=yollo", "+task.metrics.iou=0.3"], "unknown key\\(s\\) task.metrics.iou; valid"),
    (["loss=pu", "loss.surrogate=hinge"], "surrogate='hinge' is not one of sigmoid, log"),
    (["loss=pu", "loss.prior=1.5"], "prior=1.5 must be 'auto' or the object share"),
    (["task.teacher={momentum: 1.5}"], "task.teacher.momentum=1.5 must be in \\[0, 1\\)"),
    (["task.teacher={ema: 0.9}"], "task.teacher has unknown key\\(s\\) ema"),
])
def test_task_and_loss_config_problems_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(_compose(*overrides))


def test_detection_demo_is_a_cpu_sweep_over_losses_and_sparsity():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=demo_detection"], return_hydra_config=True)
    assert cfg.task.name == "detection" and cfg.model.name == "yollo" and cfg.trainer.accelerator == "cpu"
    assert cfg.task.loss_weights.lambda_background == 10 and cfg.task.postprocess.nms_iou == 0.2
    assert cfg.hydra.sweeper.params == {"loss": "ce,ece", "sparsity": "0.3,1.0"}


@pytest.mark.parametrize("experiment, dataset", [("baselines", "synthetic"), ("cpm15_baselines", "cpm15")])
def test_baseline_experiments_sweep_every_baseline_at_three_sparsities(experiment, dataset):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    assert cfg.dataset.name == dataset and cfg.task.name == "segmentation"
    params = cfg.hydra.sweeper.params
    assert params.loss.split(",") == ["ce", "focal", "elr_asym", "elr_cifar10", "elr_cifar100", "ece"]
    assert params.sparsity == "0.3,0.6,1.0"


@pytest.mark.parametrize("entry, beta, lam", [("elr_asym", 0.9, 1.0), ("elr_cifar10", 0.7, 3.0), ("elr_cifar100", 0.9, 7.0)])
def test_elr_configurations_are_the_papers(entry, beta, lam):
    cfg = _compose(f"loss={entry}")
    assert cfg.loss.name == "elr" and cfg.loss.beta == beta and cfg.loss.lam == lam


def test_loss_dynamics_experiment_tracks_ce_and_ece_at_60_percent():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=loss_dynamics"], return_hydra_config=True)
    assert cfg.callbacks.loss_dynamics.span == 25
    assert {"loss_schedules", "checkpoint", "progress_bar"} <= set(cfg.callbacks)  # the defaults stay
    assert cfg.hydra.sweeper.params == {"loss": "ce,ece", "sparsity": "0.6"}
    assert cfg.dataset.name == "synthetic" and cfg.trainer.max_epochs == 36


@pytest.mark.parametrize("overrides, message", [
    (["speed.compile_mode=fastest"], "speed.compile_mode='fastest' must be one of default, reduce-overhead"),
    (["speed.compile=yes"], "speed.compile='yes' must be true or false"),
    (["+speed.cudagraphs=true"], "unknown key\\(s\\) speed.cudagraphs; valid: channels_last, compile, compile_mode"),
    (["dataset.pin_memory=1"], "dataset.pin_memory=1 must be true, false or null"),
    (["dataset.persistent_workers=true"], "dataset.persistent_workers=true needs dataset.num_workers >= 1"),
])
def test_speed_and_loader_options_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(_compose(*overrides))


def test_speed_options_default_off_and_loader_options_automatic():
    cfg = _compose()
    assert dict(cfg.speed) == {"channels_last": False, "compile": False, "compile_mode": "default"}
    assert cfg.dataset.pin_memory is None and cfg.dataset.persistent_workers is None
    validate_config(_compose("speed.channels_last=true", "speed.compile=true", "dataset.num_workers=2",
                             "dataset.persistent_workers=true", "dataset.pin_memory=false"))


def _sweep(experiment: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=[f"experiment={experiment}"], return_hydra_config=True)


def _jobs(params) -> int:
    count = 1
    for value in params.values():
        count *= len(str(value).split(","))
    return count


@pytest.mark.parametrize("experiment, task, model, datasets, losses, jobs", [
    ("paper_segmentation", "segmentation", "unet", "tnbc,cpm15,consep", "ce,focal,elr_asym,elr_cifar10,elr_cifar100,ece",
     108),
    ("paper_detection", "detection", "yollo", "consep,kumar", "ce,focal,ece,ece_exhaustive", 48),
])
def test_paper_grids_use_the_papers_hyper_parameters(experiment, task, model, datasets, losses, jobs):
    cfg = _sweep(experiment)
    params = cfg.hydra.sweeper.params
    assert params.dataset == datasets and params.loss == losses and params.sparsity == "0.1,0.3,0.6,0.8,0.9,1.0"
    assert _jobs(params) == jobs
    assert cfg.task.name == task and cfg.model.name == model and cfg.model.base_channels in (16, 64)
    assert cfg.optimizer.lr == 1e-4 and list(cfg.optimizer.betas) == [0.9, 0.999] and cfg.dataset.batch_size == 16
    assert cfg.trainer.max_epochs == 300 and cfg.trainer.accumulate_grad_batches == 4
    assert cfg.trainer.precision == "bf16-mixed" and cfg.augment.enabled
    assert cfg.hydra.sweep.dir.endswith(experiment) and "now:" not in cfg.hydra.sweep.dir  # deterministic folder
    assert "wandb" in cfg.logger and cfg.logger.wandb.group == experiment == cfg.name
    if task == "detection":
        assert cfg.task.loss_weights.lambda_background == 10 and cfg.task.postprocess.nms_iou == 0.2


def test_every_job_of_the_paper_grids_composes_and_validates(tmp_path):
    for experiment in ("paper_segmentation", "paper_detection"):
        params = _sweep(experiment).hydra.sweeper.params
        for dataset in params.dataset.split(","):
            for loss in params.loss.split(","):
                cfg = _compose(f"experiment={experiment}", f"dataset={dataset}", f"loss={loss}", "sparsity=0.1",
                               f"dataset.root={tmp_path}")
                validate_config(cfg)


def test_sparsity_curve_sweeps_ten_levels_and_three_seeds():
    cfg = _sweep("sparsity_curve")
    assert cfg.dataset.name == "cpm15" and _jobs(cfg.hydra.sweeper.params) == 60
    assert cfg.hydra.sweeper.params.seed == "0,1,2"


def test_the_recommended_sparse_label_loss_composes_and_follows_sparsity():
    cfg = _compose("loss=pu_context", "sparsity=0.3")
    assert cfg.loss.name == "pu" and cfg.loss.sparsity == 0.3 and cfg.loss.surrogate == "sigmoid"
    assert cfg.loss.annotation_margin == 1 and _compose("loss=pu").loss.annotation_margin == 0
    own_data = _compose("loss=pu_context", "sparsity=1.0", "loss.sparsity=0.25")  # sparse as it comes: keep every label
    assert own_data.sparsity == 1.0 and own_data.loss.sparsity == 0.25
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        demo = compose(config_name="train", overrides=["experiment=demo"], return_hydra_config=True).hydra
    assert "pu_context" in demo.sweeper.params.loss.split(",")


FIRST_DETECTION_RECIPE = ["augment=none", "model.input_norm=none", "optimizer.lr=1e-3", "scheduler.name=none",
                          "~scheduler.warmup"]


@pytest.mark.parametrize("experiment, dataset", [("cpm15_detection", "cpm15"), ("monuseg_detection", "monuseg")])
def test_detection_recipes_sweep_every_objectness_loss_sparsity_and_seed(experiment, dataset):
    cfg = _sweep(experiment)
    params = cfg.hydra.sweeper.params
    assert params.loss.split(",") == ["ce", "ece", "ece_exhaustive", "pu"] and _jobs(params) == 48
    assert params.sparsity == "0.1,0.3,0.6,1.0" and params.seed == "0,1,2"
    assert cfg.dataset.name == dataset and cfg.task.metrics.point_radius == 8.0 and cfg.hydra.launcher.n_jobs == 2
    for loss in params.loss.split(","):
        validate_config(_compose(f"experiment={experiment}", f"loss={loss}", "sparsity=0.1"))
    # the segmentation benchmark's recipe, chosen on CPM-15's validation labels (README, "The detection recipe")
    assert cfg.model.input_norm == "image" and cfg.augment.enabled and cfg.augment.rotate90.p == 0.5
    assert cfg.scheduler.name == "onecycle" and cfg.scheduler.warmup == 0.2 and cfg.optimizer.lr == 3e-3
    points_cfg = _sweep(experiment.replace("detection", "points"))
    points = points_cfg.hydra.sweeper.params  # the points recipes narrow it
    assert points.loss == "ce,ece" and points.sparsity == "0.3,1.0" and "dataset.point_labels" in points
    assert points_cfg.model.input_norm == "image" and points_cfg.scheduler.name == "onecycle"  # the same recipe
    # the first recipe, which the points tables were measured with, is a few overrides away
    first = _compose(f"experiment={experiment.replace('detection', 'points')}", *FIRST_DETECTION_RECIPE)
    assert first.model.input_norm == "none" and not first.augment.enabled and first.optimizer.lr == 1e-3
    assert dict(first.scheduler) == {"name": "none"}
    validate_config(first)
