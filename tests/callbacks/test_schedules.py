"""The ECE annealing callback drives the loss schedules, logs them, and survives checkpoint resume."""

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from ece_lightning.callbacks import LossSchedules
from ece_lightning.data.datamodule import InstanceDataModule
from ece_lightning.modules import SegmentationModule

SCHEDULE = {"start": 0.1, "end": 0.5, "midpoint": 2, "width": 0.0, "unit": "epochs"}


def _fit(tmp_path, max_epochs, ckpt_path=None):
    pl.seed_everything(0)
    module = SegmentationModule(model={"name": "unet", "base_channels": 2, "depth": 1},
                                loss={"name": "ece", "negative_rate": SCHEDULE}, optimizer={"lr": 1e-3})
    datamodule = InstanceDataModule(sparsity=0.5, batch_size=2, num_train=2, num_val=2, num_test=2, image_size=32)
    callback = LossSchedules()
    seen = []

    class Spy(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            seen.append((trainer.current_epoch, pl_module.criterion.negative_rate))

    trainer = pl.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=pl.loggers.CSVLogger(tmp_path, name="log"),
                         callbacks=[callback, Spy()], enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer, callback, seen


def test_schedule_advances_each_epoch_and_is_logged(tmp_path):
    trainer, callback, seen = _fit(tmp_path, max_epochs=4)
    assert seen == [(0, 0.1), (1, 0.1), (2, 0.5), (3, 0.5)]
    log = pd.read_csv(trainer.logger.log_dir + "/metrics.csv")
    assert log["ece/negative_rate"].dropna().tolist() == pytest.approx([0.1, 0.1, 0.5, 0.5])
    assert callback.state_dict()["epoch"] == 3


def test_callback_state_survives_a_checkpoint_round_trip(tmp_path):
    trainer, _, _ = _fit(tmp_path / "first", max_epochs=2)
    path = tmp_path / "two_epochs.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["callbacks"]
    saved = next(v for k, v in state.items() if k.startswith("ECEAnnealing"))
    assert saved["epoch"] == 1 and saved["values"]["negative_rate"] == 0.1

    _, callback, seen = _fit(tmp_path / "resumed", max_epochs=4, ckpt_path=path)
    assert seen == [(2, 0.5), (3, 0.5)]  # resumed on the schedule of a 4-epoch run
    assert callback.state_dict()["epoch"] == 3


def test_state_dict_round_trip():
    callback = LossSchedules()
    callback.load_state_dict({"epoch": 7, "max_epochs": 30, "values": {"negative_rate": 0.2}})
    assert callback.state_dict() == {"epoch": 7, "max_epochs": 30, "values": {"negative_rate": 0.2}}
