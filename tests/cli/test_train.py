"""`ece-train` as a user runs it: a subprocess with Hydra overrides."""

import csv
import json

import pytest
import torch

from ece_lightning.modules import SegmentationModule

from .helpers import TINY, run_cli

REQUIRED = {"dataset", "task", "model", "loss", "sparsity", "seed", "epochs", "wall_s", "test/dice", "test/aji"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = run_cli("ece-train", *TINY, "sparsity=0.5", "seed=3", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_run_writes_a_valid_metrics_json(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert REQUIRED <= set(metrics)
    assert metrics["dataset"] == "synthetic" and metrics["task"] == "segmentation" and metrics["loss"] == "ce"
    assert metrics["sparsity"] == 0.5 and metrics["seed"] == 3 and metrics["epochs"] == 1
    assert 0.0 <= metrics["test/dice"] <= 1.0 and 0.0 <= metrics["test/aji"] <= 1.0
    assert metrics["objects/train_annotated"] < metrics["objects/train_total"]
    assert metrics["objects/test_annotated"] == metrics["objects/test_total"]
    assert 0.0 <= metrics["val/dice"] <= 1.0 and "train/loss_epoch" in metrics  # the fit's last values survive test


def test_run_writes_checkpoint_config_and_csv_log(tiny_run):
    assert (tiny_run / ".hydra" / "config.yaml").is_file()
    with open(tiny_run / "csv" / "metrics.csv") as handle:
        columns = set(next(csv.reader(handle)))
    assert {"train/loss_epoch", "val/dice", "val/aji", "test/dice"} <= columns
    module = SegmentationModule.load_from_checkpoint(tiny_run / "checkpoints" / "last.ckpt")
    assert module(torch.rand(1, 3, 32, 32)).shape == (1, 2, 32, 32)


def test_invalid_config_exits_with_a_clear_message_and_leaves_nothing(tmp_path):
    out = tmp_path / "rejected"
    result = run_cli("ece-train", "sparsity=1.5", f"hydra.run.dir={out}")
    assert result.returncode == 2
    assert "sparsity=1.5 is out of range" in result.stderr
    assert not out.exists()


def test_typo_in_a_key_names_it(tmp_path):
    result = run_cli("ece-train", "model.widht=8", f"hydra.run.dir={tmp_path / 'x'}")
    assert result.returncode != 0 and "widht" in result.stderr


def test_multirun_writes_one_run_per_job_and_wandb_offline_runs_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("ece-train", "-m", *TINY, "logger=wandb", "sparsity=0.5,1.0", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.parent for p in sweep.rglob("metrics.json"))
    assert [json.loads((r / "metrics.json").read_text())["sparsity"] for r in runs] == [0.5, 1.0]
    for run, sparsity in zip(runs, (0.5, 1.0)):  # each job closed its W&B run and opened its own
        offline_runs = list((run / "wandb").glob("offline-run-*"))
        assert len(offline_runs) == 1, run
        assert (run / "csv" / "metrics.csv").is_file()
        records = list(_wandb_records(next(offline_runs[0].glob("run-*.wandb"))))
        (header,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        assert sorted(header.tags) == ["dataset:synthetic", "loss:ce", f"sparsity:{sparsity}", "task:segmentation"]
        assert header.run_group == "default" and header.project == "ece-lightning"
        config = {u.key: json.loads(u.value_json) for r in records if r.WhichOneof("record_type") == "config"
                  for u in r.config.update}
        assert config["sparsity"] == sparsity and config["model"]["base_channels"] == 4 and config["loss"]["name"] == "ce"
        assert config["loss_entry"] == "ce"


def _wandb_records(path):
    """The protobuf records of an offline W&B run file (":W&B" header, then LevelDB-style log blocks)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    position, block, pending = 7, 32768, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = struct.unpack("<HB", data[position + 4 : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0 and length == 0:
            continue
        pending += chunk
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_real_cpm15_trains_and_evaluates_end_to_end(tmp_path, cpm15_dir):
    out = tmp_path / "cpm15"
    result = run_cli("ece-train", "dataset=cpm15", "loss=ece", "sparsity=0.3", "trainer.max_epochs=1",
                     "model.base_channels=4", "model.depth=2", "dataset.crop_size=64", "dataset.crops_per_epoch=4",
                     "dataset.eval_tile=256", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "cpm15" and metrics["loss"] == "ece"
    assert metrics["objects/train_total"] + metrics["objects/val_total"] + metrics["objects/test_total"] == 2905
    assert 0.0 <= metrics["test/aji"] <= 1.0


def test_real_monuseg_trains_and_evaluates_end_to_end(tmp_path, monuseg_dir):
    out = tmp_path / "monuseg"
    result = run_cli("ece-train", "dataset=monuseg", "loss=ece", "sparsity=0.3", "trainer.max_epochs=1",
                     "model.base_channels=4", "model.depth=2", "dataset.crop_size=64", "dataset.crops_per_epoch=4",
                     "dataset.batch_size=2", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "monuseg" and metrics["objects/test_total"] > 0
    assert sum(metrics[f"objects/{s}_total"] for s in ("train", "val", "test")) == 4949  # 4951 minus 2 degenerate
    assert 0.0 <= metrics["test/dice"] <= 1.0


def test_unreadable_dataset_stops_cleanly_with_the_file_named(tmp_path):
    from tests.data import native

    raw = native.write_cpm15_miccai(tmp_path / "raw", count=8)
    (raw / "image05.png").write_bytes(b"garbage")
    out = tmp_path / "run"
    result = run_cli("ece-train", "dataset=cpm15", f"paths.raw={raw}", f"hydra.run.dir={out}",
                     env={"ECE_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "image05.png: unreadable or corrupt image" in result.stderr
    assert not out.exists()


def test_missing_real_dataset_is_named_before_anything_runs(tmp_path):
    result = run_cli("ece-train", "dataset=cpm15", f"hydra.run.dir={tmp_path / 'x'}",
                     env={"ECE_DATASETS": str(tmp_path / "nowhere")})
    assert result.returncode == 2
    assert "dataset.root=" in result.stderr and "nowhere/cpm15_miccai2015_train: dataset folder not found" in result.stderr


def test_augmentation_preview_writes_a_grid_and_does_not_train(tmp_path):
    from PIL import Image

    out = tmp_path / "preview"
    result = run_cli("ece-train", *TINY, "augment.preview=6", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    grid = Image.open(out / "augment_preview.png")
    assert grid.size == (4 * 32 + 3 * 4, 2 * 32 + 4)  # 4 columns x 2 rows of 32 px tiles, 4 px gaps
    assert not (out / "metrics.json").exists() and not (out / "checkpoints").exists()


def test_bad_augmentation_probability_is_named(tmp_path):
    result = run_cli("ece-train", *TINY, "augment.hflip.p=1.5", f"hydra.run.dir={tmp_path / 'x'}")
    assert result.returncode == 2 and "augment.hflip.p=1.5 must be in [0, 1]" in result.stderr


@pytest.mark.parametrize("loss", ["focal", "elr_asym"])
def test_baseline_losses_train_a_segmenter_with_augmentation(tmp_path, loss):
    out = tmp_path / loss
    result = run_cli("ece-train", *TINY, f"loss={loss}", "sparsity=0.5", "augment=paper", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["loss"] == loss and 0.0 <= metrics["test/dice"] <= 1.0
    if loss.startswith("elr"):  # the per-pixel targets are in the checkpoint: 4 training tiles of 32 x 32
        state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
        assert state["criterion.targets"].shape == (4 * 32 * 32, 2)


def test_sweep_jobs_of_entries_sharing_a_loss_name_get_their_own_folders(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli("ece-train", "-m", *TINY, "loss=elr_asym,elr_cifar10", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.parent.name for p in sweep.rglob("metrics.json"))
    assert runs == ["synthetic_segmentation_elr_asym_s1.0_seed0", "synthetic_segmentation_elr_cifar10_s1.0_seed0"]


def test_bf16_mixed_precision_and_channels_last_train_on_cpu(tmp_path):
    out = tmp_path / "fast"
    result = run_cli("ece-train", *TINY, "loss=ece", "trainer.precision=bf16-mixed", "speed.channels_last=true",
                     "dataset.pin_memory=false", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test/dice"] <= 1.0 and metrics["train/loss_epoch"] == metrics["train/loss_epoch"]  # not NaN
    module = SegmentationModule.load_from_checkpoint(out / "checkpoints" / "last.ckpt")
    assert module.hparams.speed["channels_last"] is True


def test_the_console_log_is_one_line_per_run_without_third_party_noise(tmp_path):
    """What `make demo` shows a user (two jobs at once through the local launcher): a line when each run starts,
    one progress line per run, its result; no Lightning tip, no validation bars, no deprecation warnings."""
    result = run_cli("ece-train", "-m", *TINY, "trainer.log_every_n_steps=1", "sparsity=0.5,1.0",
                     "hydra/launcher=local", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    for noise in ("Tip:", "litlogger", "LeafSpec", "_pytree", "Validation", "Testing", "GPU available",
                  "estimate number of stepping batches", "Traceback"):
        assert noise not in console, noise
    lines = console.splitlines()
    for sparsity in ("0.5", "1"):
        progress = [line for line in lines if line.startswith(f"ce @ {sparsity} seed 0: ")]
        assert len(progress) == 1 and " 1 epochs, 2 steps in " in progress[0], lines
    assert sum("finished in" in line for line in lines) == 2
    assert sum("] run default: dataset=synthetic" in line for line in lines) == 2
