"""A W&B failure (no network, a full disk, the service) never stops training: the run finishes, its
metrics.json and CSV log are written, and the failure is a warning."""

import json
import logging

import pytest
import wandb
from hydra import compose, initialize_config_dir

from ece_lightning.config import CONFIG_DIR
from ece_lightning.runs.training import train

from .helpers import TINY


def _config(tmp_path):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=[*TINY, "logger=wandb", f"paths.output_dir={tmp_path}",
                                                         f"paths.root_dir={tmp_path}"])


def _finishes_with_a_warning(tmp_path, caplog, expected):
    with caplog.at_level(logging.WARNING, logger="ece_lightning.runs.loggers"):
        metrics = train(_config(tmp_path))
    assert 0.0 <= metrics["test/dice"] <= 1.0
    assert json.loads((tmp_path / "metrics.json").read_text())["test/dice"] == metrics["test/dice"]
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    warnings = [r.getMessage() for r in caplog.records if "W&B logging failed" in r.getMessage()]
    assert len(warnings) == 1 and expected in warnings[0], warnings  # said once, not per step


def test_wandb_that_cannot_start(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")

    def refuse(*args, **kwargs):
        raise ConnectionError("api.wandb.ai unreachable")

    monkeypatch.setattr(wandb, "init", refuse)
    _finishes_with_a_warning(tmp_path, caplog, "starting the W&B run: ConnectionError")


def test_wandb_that_fails_mid_run(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    from wandb.sdk.wandb_run import Run

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Run, "log", full_disk)
    _finishes_with_a_warning(tmp_path, caplog, "No space left on device")


@pytest.fixture(autouse=True)
def _no_open_wandb_run():
    yield
    if wandb.run is not None:
        wandb.finish()
