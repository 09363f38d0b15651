"""LossDynamics: per-step Obj/Background components, smoothed derivatives, a table that survives errors and
resumes, and training that is unchanged by tracking."""

import math

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from ece_lightning.analysis.dynamics import read_dynamics, resmooth
from ece_lightning.callbacks import LossDynamics, LossSchedules
from ece_lightning.callbacks.dynamics import COLUMNS
from ece_lightning.data.datamodule import InstanceDataModule
from ece_lightning.modules import DetectionModule, SegmentationModule


def _feed(callback, series):
    rows = []
    for obj, background in series:
        values = callback._update({"obj": torch.tensor(float(obj)), "background": torch.tensor(float(background))})
        rows.append({k: float(v) for k, v in values.items()})
    return rows


def test_without_smoothing_the_derivatives_are_finite_differences():
    rows = _feed(LossDynamics(span=1), [(t * t, 10.0 - t) for t in range(6)])
    assert [r["obj_d1"] for r in rows] == [0.0, 1.0, 3.0, 5.0, 7.0, 9.0]  # t^2 - (t-1)^2
    assert [r["obj_d2"] for r in rows][2:] == [2.0, 2.0, 2.0, 2.0]
    assert all(r["background_d1"] == -1.0 for r in rows[1:]) and all(r["background_d2"] == 0.0 for r in rows[2:])


def test_an_empty_group_keeps_the_smoothed_value():
    rows = _feed(LossDynamics(span=3), [(1.0, 2.0), (math.nan, 2.0), (1.0, 2.0)])
    assert math.isnan(rows[1]["obj"]) and rows[1]["obj_smooth"] == 1.0 and rows[1]["obj_d1"] == 0.0


def test_a_gap_holds_the_derivatives_instead_of_decaying_them():
    rows = _feed(LossDynamics(span=3), [(1.0, 1.0), (0.9, 1.0), (math.nan, 1.0), (math.nan, 1.0), (0.5, 1.0)])
    assert rows[1]["obj_d1"] < 0
    for key in ("obj_smooth", "obj_d1", "obj_d2"):
        assert rows[2][key] == rows[3][key] == rows[1][key]
    table = pd.DataFrame([{"step": i, "epoch": 0, "loss": 0.0, **r} for i, r in enumerate(rows)])
    again = resmooth(table, span=3)
    assert again["obj_d1"].tolist() == pytest.approx(table["obj_d1"].tolist())  # the offline scheme agrees
    assert again["obj_d2"].tolist() == pytest.approx(table["obj_d2"].tolist())


def test_state_restored_but_unused_is_kept_in_the_next_checkpoint():
    first = LossDynamics(span=5)
    _feed(first, [(1.0, 2.0), (0.8, 1.9)])
    saved = first.state_dict()
    resumed = LossDynamics(span=5)
    resumed.load_state_dict(saved)
    assert resumed.state_dict() == saved


def test_smoothing_state_round_trips_through_a_checkpoint():
    series = [(1.0 / (t + 1), 0.5 + 0.1 * math.sin(t)) for t in range(40)]
    whole = _feed(LossDynamics(span=5), series)
    first = LossDynamics(span=5)
    _feed(first, series[:17])
    resumed = LossDynamics(span=5)
    resumed.load_state_dict(first.state_dict())
    rest = _feed(resumed, series[17:])
    for key in ("obj_smooth", "obj_d1", "obj_d2", "background_d2"):
        assert [r[key] for r in rest] == pytest.approx([r[key] for r in whole[17:]], rel=1e-6, abs=1e-9)


def test_bad_span_and_an_unsupported_module_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="span=0 must be an integer >= 1"):
        LossDynamics(span=0)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(TypeError, match="records loss components"):
        LossDynamics().on_fit_start(trainer, pl.LightningModule())


def _fit(tmp_path, callbacks, loss="ece", max_epochs=3, module_cls=SegmentationModule, model=None, ckpt_path=None):
    pl.seed_everything(0)
    model = model or {"name": "unet", "base_channels": 4, "depth": 2}
    module = module_cls(model=model, loss={"name": loss}, optimizer={"lr": 1e-2})
    datamodule = InstanceDataModule(sparsity=0.5, batch_size=2, num_train=4, num_val=2, num_test=2, image_size=32)
    trainer = pl.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=pl.loggers.CSVLogger(tmp_path, name="log"),
                         callbacks=[LossSchedules(), *callbacks], enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, log_every_n_steps=1)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer, module


@pytest.mark.parametrize("loss", ["ce", "ece"])
def test_tracking_records_every_step_and_changes_nothing_of_the_training(tmp_path, loss):
    path = tmp_path / "dynamics.csv"
    trainer, tracked = _fit(tmp_path / "tracked", [LossDynamics(path, span=3)], loss=loss)
    _, plain = _fit(tmp_path / "plain", [], loss=loss)
    for (name, a), b in zip(tracked.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)

    table = read_dynamics(path)
    assert list(table.columns) == list(COLUMNS)
    assert table["step"].tolist() == list(range(trainer.global_step))  # every step, once
    assert table["epoch"].tolist() == [s // 2 for s in range(6)]
    assert table[["obj", "background", "loss"]].notna().all().all()
    assert (table["obj"] > 0).all() and (table["background"] > 0).all()
    # the logged step loss is the one trained on, and the table's smoothing is the documented one
    log = pd.read_csv(trainer.logger.log_dir + "/metrics.csv").dropna(subset=["train/loss_step"])
    assert table.set_index("step").loc[log["step"], "loss"].tolist() == pytest.approx(log["train/loss_step"].tolist())
    assert {"dynamics/obj_d2", "dynamics/background_smooth"} <= set(log.columns)
    again = resmooth(table, span=3)
    for column in COLUMNS[3:]:
        assert again[column].tolist() == pytest.approx(table[column].tolist(), rel=1e-5, abs=1e-7)
    assert tracked.record_loss_components is False  # switched off after fit


def test_detection_records_the_objectness_components(tmp_path):
    path = tmp_path / "dynamics.csv"
    _fit(tmp_path, [LossDynamics(path)], module_cls=DetectionModule,
         model={"name": "yollo", "base_channels": 4, "depth": 2}, max_epochs=2)
    table = read_dynamics(path)
    assert len(table) == 4 and table["background"].notna().all() and (table["background"] > 0).all()


class _Crash(pl.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 3:
            raise RuntimeError("simulated crash")


def test_rows_of_an_interrupted_epoch_are_written_and_a_resumed_run_continues_the_table(tmp_path):
    path = tmp_path / "dynamics.csv"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(tmp_path / "a", [LossDynamics(path), _Crash()], max_epochs=3)
    assert read_dynamics(path)["step"].tolist() == [0, 1, 2]  # the crashed epoch's rows were flushed

    trainer, _ = _fit(tmp_path / "b", [LossDynamics(path)], max_epochs=1)
    checkpoint = tmp_path / "one_epoch.ckpt"
    trainer.save_checkpoint(checkpoint)
    assert read_dynamics(path)["step"].tolist() == [0, 1]  # a fresh run replaced the old table
    _fit(tmp_path / "c", [LossDynamics(path)], max_epochs=3, ckpt_path=checkpoint)
    assert read_dynamics(path)["step"].tolist() == list(range(6))  # the resumed run appended
