"""Sweeps as users run them: re-runs skip finished jobs, parallel local jobs, SLURM job scripts, and the
multirun + DDP combination that would repeat a sweep is refused."""

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ece_lightning.config import CONFIG_DIR, ConfigError
from ece_lightning.runs.launch import check_launch, requested_devices, slurm_job_script

from .helpers import TINY, run_cli


def test_a_rerun_sweep_skips_finished_jobs_and_refuses_to_overwrite_another_config(tmp_path):
    sweep = tmp_path / "sweep"
    command = ["-m", *TINY, "sparsity=0.5", f"hydra.sweep.dir={sweep}"]
    first = run_cli("ece-train", *command)
    assert first.returncode == 0, first.stderr[-3000:]
    (run,) = [p.parent for p in sweep.rglob("metrics.json")]
    metrics = (run / "metrics.json").read_text()
    assert len(json.loads(metrics)["config_sha1"]) == 40

    again = run_cli("ece-train", *command)
    assert again.returncode == 0 and "already holds this run's results; skipped" in again.stdout
    assert (run / "metrics.json").read_text() == metrics

    other = run_cli("ece-train", *command, "model.base_channels=8")
    assert other.returncode == 2 and "already holds the results of a run with another config" in other.stderr
    assert (run / "metrics.json").read_text() == metrics
    assert OmegaConf.load(run / ".hydra" / "config.yaml").model.base_channels == 4  # the run's own config back


def test_local_launcher_runs_four_jobs_in_parallel_processes(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("ece-train", "-m", "hydra/launcher=local", "hydra.launcher.n_jobs=2", *TINY, "loss=ce,ece",
                     "sparsity=0.5,1.0", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(json.loads(p.read_text())["loss"] + str(json.loads(p.read_text())["sparsity"])
                  for p in sweep.rglob("metrics.json"))
    assert runs == ["ce0.5", "ce1.0", "ece0.5", "ece1.0"]


def test_multirun_with_ddp_relaunch_fails_fast_and_says_what_to_use(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("ece-train", "-m", *TINY, "trainer.devices=2", "sparsity=0.5,1.0", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 2
    assert "re-launch the whole sweep once per device" in result.stderr and "hydra/launcher=slurm" in result.stderr
    assert not list(sweep.rglob("metrics.json"))


@pytest.mark.parametrize("devices, strategy, multirun, launcher, refused", [
    (2, "auto", True, "hydra._internal.core_plugins.basic_launcher.BasicLauncher", True),
    (2, "ddp", True, "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", True),
    (-1, "auto", True, "hydra._internal.core_plugins.basic_launcher.BasicLauncher", True),
    (2, "ddp_spawn", True, "hydra._internal.core_plugins.basic_launcher.BasicLauncher", False),
    (2, "ddp_spawn_find_unused_parameters_true", True, "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
     False),
    (2, "ddp", True, "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", True),
    (4, "ddp", True, "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", False),
    (1, "auto", True, "hydra._internal.core_plugins.basic_launcher.BasicLauncher", False),
    (2, "ddp", False, None, False),
])
def test_check_launch(monkeypatch, devices, strategy, multirun, launcher, refused):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # -1: all of a 4-GPU machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    trainer = OmegaConf.create({"devices": devices, "strategy": strategy})
    if refused:
        with pytest.raises(ConfigError, match="use hydra/launcher=slurm|Use hydra/launcher=slurm"):
            check_launch(trainer, multirun, launcher)
    else:
        check_launch(trainer, multirun, launcher)


@pytest.mark.parametrize("devices, accelerator, gpus, refused", [
    ("auto", "gpu", 1, False), (-1, "gpu", 1, False), ("auto", "auto", 1, False), ("auto", "gpu", 4, True),
    (-1, "auto", 2, True), ("auto", "cpu", 0, False), (-1, "cpu", 0, True), ("auto", "auto", 0, False),
])
def test_all_available_devices_in_a_multirun_depend_on_the_machine(monkeypatch, devices, accelerator, gpus, refused):
    """devices=auto/-1 is one device on a one-GPU or CPU-only machine (allowed), several elsewhere (refused)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    trainer = OmegaConf.create({"devices": devices, "accelerator": accelerator, "strategy": "auto"})
    launcher = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    if refused:
        with pytest.raises(ConfigError, match="re-launch the whole sweep"):
            check_launch(trainer, True, launcher)
    else:
        check_launch(trainer, True, launcher)


@pytest.mark.parametrize("devices, count", [(1, 1), ("4", 4), ([0, 2], 2), ("0,1,3", 3), (-1, None), ("auto", None)])
def test_requested_devices(devices, count):
    assert requested_devices({"devices": devices}) == count


def test_slurm_job_script_asks_for_the_configured_gpus_and_tasks(tmp_path):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=[
            "hydra/launcher=slurm", "trainer=gpu", "trainer.devices=4", "experiment=paper_segmentation",
            "hydra.launcher.partition=gpu", f"hydra.sweep.dir={tmp_path}", "hydra.job.name=ece"])
    script = slurm_job_script(cfg.hydra.launcher, command="ece-train")
    for line in ("#SBATCH --gpus-per-node=4", "#SBATCH --ntasks-per-node=4", "#SBATCH --nodes=1",
                 "#SBATCH --partition=gpu", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64GB",
                 "#SBATCH --time=4320", "#SBATCH --job-name=ece"):
        assert line in script
    assert "srun" in script and script.rstrip().endswith("ece-train")


@pytest.mark.slow  # two DDP processes train twice (about a minute on 2 cores): make test-full
@pytest.mark.parametrize("teacher", [[], ["task.teacher={momentum: 0.9, threshold: 0.6, start: 0.0}"]],
                         ids=["plain", "ema-teacher"])
def test_two_process_ddp_matches_one_process(tmp_path, teacher):
    """trainer=ddp_sim (2 CPU processes, ddp_spawn, synchronised batch norm, global batch split) against one
    process on the same batches in the same order: same losses and metrics up to floating-point order. The
    3 validation and 5 test images do not split evenly over 2 processes: each is still evaluated once
    (data.samplers.EvaluationShard; Lightning's padding repeated one, val Dice 0.207 instead of 0.227) and the
    loss is averaged over images, not over the processes' integer-rounded batch counts (metrics.WeightedMean;
    Lightning's mean gave val/loss 0.187 instead of 0.125). With an EMA teacher every rank averages the same
    synchronised weights, so its pseudo-labels, and the results, are those of one process too."""
    common = [*TINY, "trainer.max_epochs=2", "dataset.num_train=8", "dataset.num_val=3", "dataset.num_test=5",
              "dataset.batch_size=4", "augment=none", "dataset.shuffle=false", "logger=none", "loss=ece",
              "optimizer.lr=1e-2", *teacher]
    results = {}
    for trainer in ("cpu", "ddp_sim"):
        result = run_cli("ece-train", *common, f"trainer={trainer}", f"hydra.run.dir={tmp_path / trainer}")
        assert result.returncode == 0, result.stderr[-3000:]
        results[trainer] = json.loads((tmp_path / trainer / "metrics.json").read_text())
    one, two = results["cpu"], results["ddp_sim"]
    # Measured: the metrics agree to every digit, the losses to 0.3% (summation order, synchronised batch norm,
    # and ECE's exclusion test flipping on elements at p_obj = 0.5 +- rounding).
    for key in ("train/loss_epoch", "val/loss", "test/loss"):
        assert two[key] == pytest.approx(one[key], rel=1e-2), key
    for key in ("val/dice", "val/aji", "test/dice", "test/aji"):
        assert two[key] == pytest.approx(one[key], abs=0.01), key
    for key in ("val/fg_ratio", "test/fg_ratio"):  # pixel counts over the whole split: a repeat shows
        assert two[key] == pytest.approx(one[key], rel=1e-3), key
    if teacher:
        assert two["train/pseudo_share"] == pytest.approx(one["train/pseudo_share"], abs=0.01)


def test_ddp_spawn_with_the_csv_logger_is_refused_with_the_fix(tmp_path):
    result = run_cli("ece-train", *TINY, "trainer=ddp_sim", f"hydra.run.dir={tmp_path / 'x'}")
    assert result.returncode == 2 and "use logger=none" in result.stderr


def test_global_batch_must_split_evenly_over_processes():
    from types import SimpleNamespace

    from ece_lightning.data.datamodule import InstanceDataModule

    datamodule = InstanceDataModule(batch_size=6)
    datamodule.trainer = SimpleNamespace(world_size=4)
    with pytest.raises(ValueError, match="batch_size=6 is the global batch and must divide evenly over the 4"):
        datamodule.per_device_batch_size()
    datamodule.trainer = SimpleNamespace(world_size=3)
    assert datamodule.per_device_batch_size() == 2
