"""An ece-train run killed mid-training and started again continues from last.ckpt to the very results
of an uninterrupted run (CPU, same seed)."""

import json
import os
import signal
import subprocess
import time

import pytest
import torch

from .helpers import BIN, REPO_ROOT, run_cli

RUN = ["trainer.max_epochs=16", "model.base_channels=4", "model.depth=2", "dataset.image_size=64",
       "dataset.num_train=16", "dataset.num_val=2", "dataset.num_test=2", "dataset.batch_size=4", "loss=ece",
       "sparsity=0.5", "logger=none", "seed=3"]


def _results(folder):
    metrics = json.loads((folder / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k.startswith(("test/", "val/", "train/")) or k in ("epochs", "steps")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume") / "whole"
    result = run_cli("ece-train", *RUN, f"hydra.run.dir={folder}")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def _start_and_kill(folder, logger="none", extra=()):
    """Start the run, SIGKILL it right after its first checkpoint, return the epoch that checkpoint holds."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    process = subprocess.Popen([str(BIN / "ece-train"), *RUN, *extra, f"logger={logger}", f"hydra.run.dir={folder}"],
                               cwd=REPO_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = folder / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.is_file() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert last.is_file(), "the run ended before writing a checkpoint"
    assert not (folder / "metrics.json").exists(), "the run finished before it was killed: nothing to resume"
    for _ in range(50):  # the kill may land while last.ckpt is being replaced
        try:
            return torch.load(last, map_location="cpu", weights_only=False)["epoch"]
        except Exception:
            time.sleep(0.1)
    raise AssertionError("last.ckpt unreadable")


def test_killed_run_resumes_to_the_same_results(uninterrupted, tmp_path):
    folder = tmp_path / "killed"
    epoch = _start_and_kill(folder)
    assert epoch < 15
    result = run_cli("ece-train", *RUN, f"hydra.run.dir={folder}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming {folder} from last.ckpt" in result.stdout
    assert _results(folder) == _results(uninterrupted)


def test_killed_run_with_loader_workers_resumes_to_the_same_results(tmp_path):
    """Augmented random crops drawn in 2 persistent worker processes (data.samplers.enter_epoch), with a
    learning-rate schedule, whose total steps are asked of the trainer only once the resumed epoch is restored
    (optim.build_scheduler), and an EMA teacher giving pseudo-labels from epoch 2 (its weights in last.ckpt)."""
    workers = ["dataset.num_workers=2", "trainer.max_epochs=10", "scheduler.name=onecycle", "+scheduler.warmup=0.2",
               "task.teacher={momentum: 0.9, threshold: 0.6, start: 0.2}"]
    whole = tmp_path / "whole"
    result = run_cli("ece-train", *RUN, *workers, f"hydra.run.dir={whole}")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "killed"
    assert _start_and_kill(folder, extra=workers) < 9
    result = run_cli("ece-train", *RUN, *workers, f"hydra.run.dir={folder}")
    assert result.returncode == 0 and "resuming" in result.stdout, result.stderr[-3000:]
    assert _results(folder) == _results(whole)
    assert "train/pseudo_share" in _results(whole)


@pytest.mark.slow  # a third killed-and-restarted run (20-30 s): make test-full
def test_an_interrupted_run_of_another_config_is_not_resumed(tmp_path):
    folder = tmp_path / "killed"
    _start_and_kill(folder, logger="csv")
    assert (folder / "csv" / "metrics.csv").is_file()
    config = (folder / ".hydra" / "config.yaml").read_text()
    result = run_cli("ece-train", *RUN, "logger=csv", "sparsity=0.3", f"hydra.run.dir={folder}")
    assert result.returncode == 2 and "holds an interrupted run of another config" in result.stderr
    assert "resume=false" in result.stderr
    assert (folder / ".hydra" / "config.yaml").read_text() == config  # the interrupted run's config is kept
    fresh = run_cli("ece-train", *RUN, "sparsity=0.3", "resume=false", "trainer.max_epochs=2",
                    f"hydra.run.dir={folder}")
    assert fresh.returncode == 0 and "resuming" not in fresh.stdout, fresh.stderr[-2000:]
    assert (folder / "checkpoints" / "last.not-resumed-1.ckpt").is_file()  # set aside, not lost
    assert json.loads((folder / "metrics.json").read_text())["sparsity"] == 0.3


@pytest.mark.slow  # a third killed-and-restarted run (20-30 s): make test-full
def test_the_interrupted_csv_log_is_kept(tmp_path):
    folder = tmp_path / "killed"
    _start_and_kill(folder, logger="csv")
    before = (folder / "csv" / "metrics.csv").read_text()
    result = run_cli("ece-train", *RUN, "logger=csv", f"hydra.run.dir={folder}")
    assert result.returncode == 0 and "resuming" in result.stdout, result.stderr[-2000:]
    assert (folder / "csv" / "metrics.interrupted-1.csv").read_text() == before
    assert "test/dice" in (folder / "csv" / "metrics.csv").read_text()


def test_runs_finished_before_resuming_existed_are_still_skipped(tmp_path):
    """Their fingerprint counted the old checkpoint settings (save_last, save_top_k 0)."""
    from hydra import compose, initialize_config_dir

    from ece_lightning.config import CONFIG_DIR
    from ece_lightning.runs.state import completed_run, config_fingerprint

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["loss=ece", f"paths.output_dir={tmp_path}"])
    legacy = config_fingerprint(cfg, layout="v1")
    assert legacy != config_fingerprint(cfg)
    (tmp_path / "metrics.json").write_text(json.dumps({"test/dice": 0.5, "config_sha1": legacy}))
    assert completed_run(tmp_path, cfg)["test/dice"] == 0.5
