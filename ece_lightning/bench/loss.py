"""Loss cost: forward + backward of every registry loss against torch's cross-entropy on one tensor."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..losses import LOSSES, build_loss


@dataclass
class LossTiming:
    name: str
    device: str
    shape: tuple[int, ...]
    median_ms: float
    ratio_to_ce: float


def _candidates() -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """torch CE as the yardstick, then each registry entry (ECE also as its reference variant, PU at sparsity
    0.3 with both surrogates and with the annotated context), with schedules set past the warm-up so every component is active."""
    candidates: dict[str, Callable] = {"torch.cross_entropy": F.cross_entropy}
    special = {"ece": {"ece": {}, "ece (reference)": {"variant": "reference"}},
               "pu": {"pu (sparsity 0.3, log)": {"sparsity": 0.3, "surrogate": "log"},
                      "pu (sparsity 0.3, sigmoid)": {"sparsity": 0.3, "surrogate": "sigmoid"},
                      "pu (sparsity 0.3, sigmoid, annotation_margin 1)": {"sparsity": 0.3, "annotation_margin": 1}}}
    for name in sorted(LOSSES):
        variants = special.get(name, {name: {}})
        for label, kwargs in variants.items():
            loss = build_loss(name, **kwargs)
            if hasattr(loss, "set_progress"):
                loss.set_progress(200, 300)
            candidates[label] = loss
    return candidates


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_losses(shape: tuple[int, ...], device: str = "cpu", repeats: int = 20, warmup: int = 3,
                 dtype: torch.dtype = torch.float32) -> list[LossTiming]:
    """Median fwd+bwd time of each candidate on the same logits/targets, interleaved round by round."""
    dev = torch.device(device)
    generator = torch.Generator(device="cpu").manual_seed(0)
    logits = torch.randn(shape, generator=generator).to(dev, dtype)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=generator).to(dev)
    target[:, : shape[2] // 2] = 0  # half the image unannotated
    candidates = _candidates()
    # Losses with per-pixel state (ELR) see every element as a training pixel, buffer update included.
    pixels = torch.arange(target.numel(), device=dev).reshape(target.shape)
    for name, loss in list(candidates.items()):
        if getattr(loss, "requires_pixels", False):
            loss.to(dev).allocate(target.numel(), shape[1])
            candidates[name] = lambda x, t, loss=loss: loss(x, t, pixels=pixels)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for round_index in range(warmup + repeats):
        for name, loss in candidates.items():
            x = logits.detach().requires_grad_()
            _synchronize(dev)
            start = time.perf_counter()
            loss(x, target).backward()
            _synchronize(dev)
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    reference = statistics.median(times["torch.cross_entropy"])
    return [LossTiming(name, device, tuple(shape), 1e3 * statistics.median(t), statistics.median(t) / reference)
            for name, t in times.items()]
