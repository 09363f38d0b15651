"""What every task LightningModule shares: the optimiser (``optimizer`` config), the validation/test loops over
its metrics, sizing of per-pixel loss state, and evaluation-mode prediction for pictures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torchmetrics import MetricCollection

from ..errors import ConfigError, config_key
from ..metrics import WeightedMean
from ..models import MODELS, models_for
from ..optim import build_optimizer, build_scheduler, check_optimizer, check_scheduler
from ..registry import check_arguments
from .pixel_state import allocate_pixel_state

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class TaskModule(pl.LightningModule):
    """Base of the task modules. A subclass sets ``net`` and ``criterion``, calls ``init_metrics()`` and
    implements ``make_metrics(prefix)``, ``update_metrics(metrics, outputs, target_instances)`` and
    ``evaluation_loss(outputs, batch)``; it may filter what the test logs (``test_results``).

    Args:
        optimizer: an optimiser registry config (``ece_lightning.optim``): ``name`` (default ``adam``) and its
            settings, e.g. ``lr``, ``betas``, ``weight_decay`` (paper: Adam, 1e-4, (0.9, 0.999), 0).
        scheduler: a learning-rate schedule config (``optim.SCHEDULERS``): ``name`` none (constant ``lr``, the
            default and the paper's), cosine or onecycle (``lr`` is then the peak), and ``warmup``, the fraction of
            the training's optimiser steps it warms up over.
    """

    #: the task this module serves (``task.name``); its network must serve it too
    task = ""
    #: classes of per-pixel loss state (ELR's targets) per training pixel
    pixel_state_channels = 2
    #: set by the LossDynamics callback: each training step then leaves ``loss_components``, the mean loss
    #: term over annotated ("obj") and unannotated ("background") elements and the step's loss ("loss"),
    #: detached scalar tensors
    record_loss_components = False
    loss_components: dict[str, torch.Tensor] | None = None

    def __init__(self, optimizer: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None):
        super().__init__()
        self.optimizer_cfg = dict(optimizer or {})
        with config_key("optimizer"):
            check_optimizer(self.optimizer_cfg)
        with config_key("scheduler"):
            self.scheduler_cfg = check_scheduler(scheduler)

    def build_network(self, model: dict[str, Any], speed: dict[str, Any] | None = None) -> None:
        """``self.net`` from its model registry config, with the ``speed`` options applied; a model of
        another task is a ConfigError naming the models that fit."""
        with config_key("model"):
            self.net = MODELS.build(model)
        served = getattr(self.net, "task", None)
        if served != self.task:
            raise ConfigError(f"model.name={model.get('name')!r} is a {served} model but task.name={self.task!r}; use "
                              + " or ".join(f"model={name}" for name in models_for(self.task)))
        speed = dict(speed or {})
        check_arguments(self.configure_speed, speed, prefix="speed")
        with config_key("speed"):
            self.configure_speed(**speed)

    def init_metrics(self) -> None:
        self.val_metrics = self.make_metrics("val/")
        self.test_metrics = self.make_metrics("test/")
        # The evaluation loss as a metric of sums, not a logged value: exact under DDP when processes evaluate
        # different numbers of samples (data.samplers.EvaluationShard); see WeightedMean.
        self.val_loss = WeightedMean()
        self.test_loss = WeightedMean()

    def make_metrics(self, prefix: str) -> MetricCollection:
        raise NotImplementedError

    def update_metrics(self, metrics: MetricCollection, outputs: torch.Tensor, target_instances: torch.Tensor,
                       records: list[dict[str, Any]] | None = None, batch: dict[str, torch.Tensor] | None = None
                       ) -> None:
        """Update ``metrics`` with a batch; with ``records`` (a list) also append one dict of integer counts per
        sample, from the same post-processed predictions (``ece-eval``'s per-image table). ``batch`` is the whole
        batch, for what a task reads besides the instance maps (detection: point labels)."""
        raise NotImplementedError

    def evaluation_loss(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def test_results(self, results: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What the test logs of its metrics' results (all by default)."""
        return results

    def configure_speed(self, channels_last: bool = False, compile: bool = False, compile_mode: str = "default") -> None:
        """Speed options of the network (``speed`` in the config): ``channels_last`` stores it and its inputs
        NHWC; ``compile`` runs it through ``torch.compile`` (mode ``compile_mode``). The compiled network is
        kept outside the module's children, so state dicts and checkpoints are those of an uncompiled run."""
        for key, value, kind in (("channels_last", channels_last, bool), ("compile", compile, bool)):
            if not isinstance(value, kind):
                raise ValueError(f"speed.{key}={value!r} must be true or false")
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"speed.compile_mode={compile_mode!r} must be one of {', '.join(COMPILE_MODES)}")
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        compiled = torch.compile(self.net, mode=compile_mode) if compile else None
        self.__dict__["_compiled_net"] = compiled  # not a registered child: no "_orig_mod." keys

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if getattr(self, "channels_last", False):
            images = images.contiguous(memory_format=torch.channels_last)
        compiled = self.__dict__.get("_compiled_net")
        return (self.net if compiled is None else compiled)(images)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            allocate_pixel_state(self, self.trainer.datamodule, num_channels=self.pixel_state_channels)

    def training_progress(self) -> float:
        """The fraction of training done at the start of this epoch (by steps when ``max_epochs`` is open; 0 when
        both are open: the length of training is unknown)."""
        trainer = self.trainer
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            return min(1.0, trainer.current_epoch / trainer.max_epochs)
        if trainer.max_steps is not None and trainer.max_steps > 0:
            return min(1.0, trainer.global_step / trainer.max_steps)
        return 0.0

    def log_training_loss(self, loss: torch.Tensor, batch_size: int) -> None:
        """``train/loss_step`` (this process, every step, no synchronisation) and ``train/loss_epoch`` (the
        epoch mean over every process of a distributed run, synchronised once per epoch)."""
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=batch_size)
        self.log("train/loss_epoch", loss, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)

    def evaluate_batch(self, batch: dict[str, torch.Tensor], metrics: MetricCollection, loss: WeightedMean,
                       records: list[dict[str, Any]] | None = None) -> None:
        """One evaluation batch (validation, test, ``ece-eval``): outputs, the evaluation loss, the metrics (and
        with ``records`` one record of counts per sample); the padding of whole images is left out."""
        outputs, batch = self.crop_to_images(self.evaluation_outputs(batch["image"]), batch)
        loss.update(self.evaluation_loss(outputs, batch), weight=len(batch["image"]))
        self.update_metrics(metrics, outputs, batch["instances"], records=records, batch=batch)

    def evaluation_outputs(self, images: torch.Tensor) -> torch.Tensor:
        """The outputs evaluation and pictures use (a task may average augmented copies: segmentation's ``tta``);
        training always uses ``forward``."""
        return self(images)

    def crop_to_images(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Outputs and labels of whole images without their padding (``size``: each image's own (H, W))."""
        if "size" not in batch:
            return outputs, batch
        height, width = (int(v) for v in batch["size"].max(dim=0).values)
        if (height, width) == tuple(batch["instances"].shape[-2:]):
            return outputs, batch
        if len(batch["size"]) != 1 or (batch["size"] != batch["size"][0]).any():
            raise ValueError("padded whole images of different sizes must be evaluated one per batch")
        cropped = {**batch, "target": batch["target"][..., :height, :width],
                   "instances": batch["instances"][..., :height, :width]}
        return self.crop_outputs(outputs, height, width), cropped

    def crop_outputs(self, outputs: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The outputs of the top-left ``height`` x ``width`` pixels (a task whose outputs are not per pixel keeps
        them whole)."""
        return outputs

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.evaluate_batch(batch, self.val_metrics, self.val_loss)

    def on_validation_epoch_end(self) -> None:
        # Both computed over every rank already (sums of counts); sync_dist only averages equal values.
        self.log_dict({**self.val_metrics.compute(), "val/loss": self.val_loss.compute()}, prog_bar=True,
                      sync_dist=True)
        self.val_metrics.reset()
        self.val_loss.reset()

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.evaluate_batch(batch, self.test_metrics, self.test_loss)

    def on_test_epoch_end(self) -> None:
        self.log_dict({**self.test_results(self.test_metrics.compute()), "test/loss": self.test_loss.compute()},
                      sync_dist=True)
        self.test_metrics.reset()
        self.test_loss.reset()

    def predict_images(self, batch: dict[str, torch.Tensor], max_images: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``max_images`` images of ``batch`` on the module's device and their outputs, computed in
        eval mode without gradients (the training mode is restored)."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            images = batch["image"][:max_images].to(self.device)
            outputs = self.evaluation_outputs(images)
        self.train(was_training)
        return images, outputs

    @staticmethod
    def to_rgb(image: torch.Tensor) -> np.ndarray:
        """(H, W, 3) uint8 of a (3, H, W) image in [0, 1]."""
        return (image.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        # trainable parameters only: an EMA teacher's copy of the network is no optimiser's business
        optimizer = build_optimizer(self.optimizer_cfg, [p for p in self.parameters() if p.requires_grad])
        if self.scheduler_cfg["name"] == "none":
            return optimizer
        # asked lazily: estimated_stepping_batches sets up the train loader, before a resumed run restores its epoch
        schedule = build_scheduler(self.scheduler_cfg, optimizer, lambda: self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
