"""Training-step cost: our Lightning step (module, callbacks, logging, data loader) against a bare PyTorch
loop on the same network, loss, optimiser, batches and precision, and the cost of LossDynamics on top; on
the CPU or a CUDA device. The "resident batch" loop (one batch kept on the device, no data loading) is the
ceiling that the GPU anchors in the README (Speed) measure."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import pytorch_lightning as pl
import torch

PRECISIONS = ("32", "bf16-mixed")
DEVICES = ("cpu", "cuda")
AUGMENTS = ("none", "paper")

BARE = "bare PyTorch loop"
RESIDENT = "bare loop, resident batch"
LIGHTNING = "Lightning (ece-train step)"
DYNAMICS = "Lightning + LossDynamics"
TEACHER = "Lightning + EMA teacher (self-training)"
#: the teacher of the TEACHER variant: pseudo-labels from the first step, so every timed step pays for them
BENCH_TEACHER = {"momentum": 0.99, "threshold": 0.9, "start": 0.0}


@dataclass
class TrainBenchRow:
    name: str
    step_ms: float
    ratio_to_bare: float
    images_per_s: float


@dataclass
class TrainBenchSetup:
    """What every variant trains: U-Net ``base_channels`` x ``depth`` on ``batch_size`` synthetic crops of
    ``size``^2 with loss ``loss``, ``steps`` timed steps after ``warmup``, at ``precision`` on ``device``;
    ``workers`` loader processes and the ``augment`` pipeline (none | paper) in every variant that loads."""

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
    device: str = "cpu"
    workers: int = 0
    augment: str = "none"

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
        if self.device not in DEVICES:
            raise ValueError(f"device={self.device!r} is not one of {', '.join(DEVICES)}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' but no CUDA device is available")
        if self.workers < 0:
            raise ValueError(f"workers={self.workers} must be >= 0")
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment={self.augment!r} is not one of {', '.join(AUGMENTS)}")


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _use_cudnn_autotuner(device: str) -> None:
    """As ``trainer=gpu`` (``benchmark: true``), so the bare loops pick the same convolution kernels."""
    if device == "cuda":
        torch.backends.cudnn.benchmark = True


def _module_and_data(setup: TrainBenchSetup, teacher: dict | None = None):
    from ..data.datamodule import InstanceDataModule
    from ..modules import SegmentationModule

    pl.seed_everything(0, verbose=False)
    module = SegmentationModule(model={"name": "unet", "base_channels": setup.base_channels, "depth": setup.depth},
                                loss={"name": setup.loss}, optimizer={"lr": 1e-3},
                                speed={"channels_last": setup.channels_last, "compile": setup.compile},
                                teacher=teacher)
    augment = None
    if setup.augment == "paper":
        from omegaconf import OmegaConf

        from ..config import CONFIG_DIR

        augment = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "augment" / "paper.yaml"))
    batches = setup.steps + setup.warmup
    datamodule = InstanceDataModule(source="synthetic", sparsity=0.5, batch_size=setup.batch_size,
                                        num_train=setup.batch_size, num_val=1, num_test=1, image_size=setup.size,
                                        crop_size=setup.size, crops_per_epoch=batches * setup.batch_size,
                                        num_workers=setup.workers, augment=augment)
    datamodule.setup("fit")
    return module, datamodule


def _bare_steps(setup: TrainBenchSetup, module, batches) -> float:
    _use_cudnn_autotuner(setup.device)
    module.to(setup.device).train()
    criterion = module.criterion
    optimizer = torch.optim.Adam(module.net.parameters(), lr=1e-3)
    autocast = torch.autocast(setup.device, dtype=torch.bfloat16, enabled=setup.precision == "bf16-mixed")
    started, index = None, -1
    for index, batch in enumerate(batches):
        image = batch["image"].to(setup.device, non_blocking=True)
        target = batch["target"].to(setup.device, non_blocking=True)
        with autocast:
            logits = module(image)  # TaskModule.forward: channels-last input, compiled network
        loss = criterion(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index == setup.warmup - 1:  # as the Lightning clock: from the end of the last warm-up step
            _synchronize(setup.device)
            started = time.perf_counter()
    _synchronize(setup.device)
    _check_steps(index + 1, setup)
    return (time.perf_counter() - started) / setup.steps


def bare_loop_step_s(setup: TrainBenchSetup) -> float:
    """Seconds per step of a plain loop: next batch from the same loader, to the device, forward (the
    module's network, compiled and channels-last as set up, under bf16 autocast for bf16-mixed), loss,
    backward, Adam step."""
    module, datamodule = _module_and_data(setup)
    return _bare_steps(setup, module, datamodule.train_dataloader())


def resident_loop_step_s(setup: TrainBenchSetup) -> float:
    """The bare loop on one batch that stays on the device: no data loading at all (the ceiling)."""
    module, datamodule = _module_and_data(setup)
    batch = next(iter(datamodule.train_dataloader()))
    batch = {key: batch[key].to(setup.device) for key in ("image", "target")}
    return _bare_steps(setup, module, [batch] * (setup.warmup + setup.steps))


def _check_steps(batches: int, setup: TrainBenchSetup) -> None:
    if batches != setup.warmup + setup.steps:
        raise RuntimeError(f"the loader gave {batches} batches, not {setup.warmup + setup.steps}: timing is off")


class _StepClock(pl.Callback):
    def __init__(self, warmup: int, device: str):
        self.warmup, self.device, self.started, self.ended, self.batches = warmup, device, None, None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches += 1
        if self.batches == self.warmup:
            _synchronize(self.device)
            self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        _synchronize(self.device)
        self.ended = time.perf_counter()


def lightning_step_s(setup: TrainBenchSetup, loss_dynamics: bool = False, teacher: dict | None = None) -> float:
    """Seconds per step of ``Trainer.fit`` on the same module and data as ``ece-train`` sets it up (CSV
    logger every 5 steps, ECE annealing; no checkpoint or validation inside the timed steps), optionally
    with the LossDynamics callback writing its table, or with an EMA teacher (``task.teacher``)."""
    import tempfile

    from ..callbacks import LossDynamics, LossSchedules

    module, datamodule = _module_and_data(setup, teacher)
    clock = _StepClock(setup.warmup, setup.device)
    with tempfile.TemporaryDirectory() as folder:
        callbacks = [LossSchedules(), clock] + ([LossDynamics(path=f"{folder}/dynamics.csv")] if loss_dynamics else [])
        cuda = setup.device == "cuda"
        trainer = pl.Trainer(max_epochs=1, accelerator="gpu" if cuda else "cpu", devices=1, benchmark=cuda or None,
                             precision=setup.precision, logger=pl.loggers.CSVLogger(folder), log_every_n_steps=5,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             limit_val_batches=0, num_sanity_val_steps=0, callbacks=callbacks,
                             default_root_dir=folder)
        trainer.fit(module, datamodule=datamodule)
    _check_steps(clock.batches, setup)
    return (clock.ended - clock.started) / setup.steps


VARIANTS = {RESIDENT: resident_loop_step_s, BARE: bare_loop_step_s, LIGHTNING: lightning_step_s,
            DYNAMICS: lambda setup: lightning_step_s(setup, loss_dynamics=True),
            TEACHER: lambda setup: lightning_step_s(setup, teacher=BENCH_TEACHER)}


def bench_train(setup: TrainBenchSetup, repeats: int = 3) -> list[TrainBenchRow]:
    """Median step time of each variant over ``repeats`` rounds. Every round runs each variant once and
    starts one variant later than the round before, so no variant always runs first or last: step times
    drift by ~20% within one CPU process (caches, allocator), which fixed orders turned into ratios."""
    names = list(VARIANTS)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(VARIANTS[name](setup))
    bare = statistics.median(times[BARE])
    rows = []
    for name in names:
        step = statistics.median(times[name])
        rows.append(TrainBenchRow(name, 1e3 * step, step / bare, setup.batch_size / step))
    return rows
