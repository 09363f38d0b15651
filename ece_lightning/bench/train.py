"""Training-step cost: our Lightning step (module, callbacks, logging, data loader) against a bare PyTorch
loop on the same network, loss, optimiser, batches and precision, and the cost of LossDynamics on top."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import pytorch_lightning as pl
import torch

PRECISIONS = ("32", "bf16-mixed")


@dataclass
class TrainBenchRow:
    name: str
    step_ms: float
    ratio_to_bare: float


@dataclass
class TrainBenchSetup:
    size: int = 128
    batch_size: int = 8
    base_channels: int = 16
    depth: int = 4
    loss: str = "ece"
    steps: int = 20
    warmup: int = 4
    precision: str = "32"
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        if self.steps < 2 or self.warmup < 1:
            raise ValueError(f"steps={self.steps} must be >= 2 and warmup={self.warmup} >= 1")
        from ..losses import LOSSES

        if self.loss not in LOSSES or getattr(LOSSES[self.loss], "requires_pixels", False):
            valid = sorted(name for name, cls in LOSSES.items() if not getattr(cls, "requires_pixels", False))
            raise ValueError(f"loss={self.loss!r} cannot be benchmarked here (unknown, or it keeps per-pixel state); "
                             f"use one of {', '.join(valid)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is not one of {', '.join(PRECISIONS)}")


def _module_and_data(setup: TrainBenchSetup):
    from ..data.datamodule import SegmentationDataModule
    from ..modules import SegmentationModule

    pl.seed_everything(0, verbose=False)
    module = SegmentationModule(model={"name": "unet", "base_channels": setup.base_channels, "depth": setup.depth},
                                loss={"name": setup.loss}, optimizer={"lr": 1e-3},
                                speed={"channels_last": setup.channels_last, "compile": setup.compile})
    batches = setup.steps + setup.warmup
    datamodule = SegmentationDataModule(source="synthetic", sparsity=0.5, batch_size=setup.batch_size,
                                        num_train=setup.batch_size, num_val=1, num_test=1, image_size=setup.size,
                                        crop_size=setup.size, crops_per_epoch=batches * setup.batch_size)
    datamodule.setup("fit")
    return module, datamodule


def bare_loop_step_s(setup: TrainBenchSetup) -> float:
    """Seconds per step of a plain loop: next batch, forward (the module's network, compiled and
    channels-last as set up, under bf16 autocast for bf16-mixed), loss, backward, Adam step."""
    module, datamodule = _module_and_data(setup)
    module.train()
    criterion = module.criterion
    optimizer = torch.optim.Adam(module.net.parameters(), lr=1e-3)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=setup.precision == "bf16-mixed")
    started, index = None, -1
    for index, batch in enumerate(datamodule.train_dataloader()):
        with autocast:
            logits = module(batch["image"])  # TaskModule.forward: channels-last input, compiled network
        loss = criterion(logits, batch["target"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index == setup.warmup - 1:  # as the Lightning clock: from the end of the last warm-up step
            started = time.perf_counter()
    _check_steps(index + 1, setup)
    return (time.perf_counter() - started) / setup.steps


def _check_steps(batches: int, setup: TrainBenchSetup) -> None:
    if batches != setup.warmup + setup.steps:
        raise RuntimeError(f"the loader gave {batches} batches, not {setup.warmup + setup.steps}: timing is off")


class _StepClock(pl.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.started, self.ended, self.batches = warmup, None, None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches += 1
        if self.batches == self.warmup:
            self.started = time.perf_counter()
        self.ended = time.perf_counter()


def lightning_step_s(setup: TrainBenchSetup, loss_dynamics: bool = False) -> float:
    """Seconds per step of ``Trainer.fit`` on the same module and data as ``ece-train`` sets it up for a
    CPU run (CSV logger every 5 steps, ECE annealing; no checkpoint or validation inside the timed steps),
    optionally with the LossDynamics callback writing its table."""
    import tempfile

    from ..callbacks import ECEAnnealing, LossDynamics

    module, datamodule = _module_and_data(setup)
    clock = _StepClock(setup.warmup)
    with tempfile.TemporaryDirectory() as folder:
        callbacks = [ECEAnnealing(), clock] + ([LossDynamics(path=f"{folder}/dynamics.csv")] if loss_dynamics else [])
        trainer = pl.Trainer(max_epochs=1, accelerator="cpu", precision=setup.precision,
                             logger=pl.loggers.CSVLogger(folder), log_every_n_steps=5, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                             num_sanity_val_steps=0, callbacks=callbacks, default_root_dir=folder)
        trainer.fit(module, datamodule=datamodule)
    _check_steps(clock.batches, setup)
    return (clock.ended - clock.started) / setup.steps


def bench_train(setup: TrainBenchSetup, repeats: int = 3) -> list[TrainBenchRow]:
    """Median step time of each variant over ``repeats`` rounds (variants interleaved per round)."""
    variants = {"bare PyTorch loop": bare_loop_step_s, "Lightning (ece-train step)": lightning_step_s,
                "Lightning + LossDynamics": lambda s: lightning_step_s(s, loss_dynamics=True)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            times[name].append(run(setup))
    bare = statistics.median(times["bare PyTorch loop"])
    return [TrainBenchRow(name, 1e3 * statistics.median(t), statistics.median(t) / bare) for name, t in times.items()]
