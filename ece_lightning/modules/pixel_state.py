"""Per-training-pixel loss state (ELR's target buffer): sized from the training set when fitting starts."""

from __future__ import annotations

from typing import Any

from torch import nn


def allocate_pixel_state(module: nn.Module, datamodule: Any, num_channels: int) -> None:
    """Call ``allocate(num_pixels, num_channels)`` on every sub-module that keeps per-pixel state, with the
    number of pixels of the datamodule's training set (a no-op when no loss needs it)."""
    losses = [m for m in module.modules() if getattr(m, "requires_pixels", False) and hasattr(m, "allocate")]
    if not losses:
        return
    if datamodule is None or not hasattr(datamodule, "num_train_pixels"):
        raise RuntimeError("this loss keeps a state per training pixel: train with a DataModule that provides "
                           "num_train_pixels (ece_lightning.data.InstanceDataModule)")
    for loss in losses:
        loss.allocate(datamodule.num_train_pixels, num_channels)
    # Every rank applies every rank's updates itself: DDP must not broadcast these (large) buffers each step.
    module._ddp_params_and_buffers_to_ignore = [
        f"{name}.targets" for name, sub in module.named_modules() if any(sub is loss for loss in losses)
    ]
