"""The learning-rate schedules of ``scheduler`` (none by default): their shapes, their checks, and the module
stepping them every optimiser step."""

import math

import pytest
import pytorch_lightning as pl
import torch

from ece_lightning.errors import ConfigError
from ece_lightning.modules import SegmentationModule
from ece_lightning.optim import SCHEDULERS, build_scheduler, cosine, one_cycle


def test_none_is_a_constant_learning_rate():
    assert [SCHEDULERS.get("none")(step, 10) for step in range(10)] == [1.0] * 10


def test_cosine_warms_up_linearly_then_decays_to_zero():
    factors = [cosine(step, 10, 0.2) for step in range(11)]
    assert factors[:2] == pytest.approx([1 / 25, 1 / 25 + 0.5 * 24 / 25]) and factors[2] == 1.0
    assert all(a >= b for a, b in zip(factors[2:], factors[3:])) and factors[10] == pytest.approx(0.0)


def test_onecycle_rises_from_a_25th_to_the_peak_and_ends_near_zero():
    total = 100
    factors = [one_cycle(step, total, 0.2) for step in range(total)]
    assert factors[0] == pytest.approx(1 / 25) and max(factors) == pytest.approx(1.0) and factors.index(1.0) == 20
    assert factors[-1] == pytest.approx(1 / 25e4)
    assert factors[60] == pytest.approx(1 / 25e4 + (1 - 1 / 25e4) * 0.5 * (1 + math.cos(math.pi * 40 / 79)))


@pytest.mark.parametrize("name", SCHEDULERS.names())
@pytest.mark.parametrize("warmup", [0.0, 0.01, 0.3])
def test_the_first_factor_does_not_depend_on_the_total(name, warmup):
    """build_scheduler sets the initial learning rate before the total is known (see its docstring)."""
    options = {} if name == "none" else {"warmup": warmup}
    first = {SCHEDULERS.get(name)(0, total, **options) for total in (1, 2, 7, 50, 10_000)}
    assert len(first) == 1


def test_a_lazy_total_is_asked_once_after_the_first_step():
    asked = []
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = build_scheduler({"name": "onecycle", "warmup": 0.2}, optimizer, lambda: asked.append(1) or 10)
    assert asked == [] and optimizer.param_groups[0]["lr"] == pytest.approx(1 / 25)
    lrs = []
    for _ in range(9):
        optimizer.step()
        schedule.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert asked == [1] and lrs == pytest.approx([one_cycle(step, 10, 0.2) for step in range(1, 10)])


@pytest.mark.parametrize("scheduler, message", [
    ({"name": "step"}, "scheduler.name='step' is not registered; valid: cosine, none, onecycle"),
    ({"name": "onecycle", "warmup": 1.0}, "scheduler.warmup=1.0 must be a fraction of the training steps in [0, 1)"),
    ({"name": "none", "warmup": 0.1}, "unknown key(s) scheduler.warmup"),
])
def test_bad_schedules_are_named(scheduler, message):
    with pytest.raises(ConfigError) as info:
        SegmentationModule(model={"name": "unet", "base_channels": 2, "depth": 1}, loss={"name": "ce"},
                           scheduler=scheduler)
    assert message in str(info.value)


class _Stepper(pl.Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def _learning_rates(scheduler: dict | None, steps: int = 6) -> list[float]:
    module = SegmentationModule(model={"name": "unet", "base_channels": 2, "depth": 1}, loss={"name": "ce"},
                                optimizer={"lr": 0.01}, scheduler=scheduler)
    data = [{"image": torch.rand(1, 3, 8, 8), "target": torch.ones(1, 8, 8, dtype=torch.long)}] * steps
    module.setup = lambda stage: None  # no datamodule: no per-pixel loss state
    stepper = _Stepper()
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[stepper])
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
    return stepper.lrs


def test_the_module_steps_its_schedule_every_optimiser_step():
    assert _learning_rates(None) == [0.01] * 6  # default: constant
    lrs = _learning_rates({"name": "cosine", "warmup": 0.5})
    assert lrs == pytest.approx([0.01 * cosine(step, 6, 0.5) for step in range(6)])
