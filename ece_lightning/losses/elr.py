"""Early-learning regularisation (ELR, Liu et al., NeurIPS 2020), per pixel (or per grid cell).

    L = CE + lambda * mean_i log(1 - <t_i, p_i>),    t_i <- beta * t_i + (1 - beta) * p_i / sum(p_i)

p_i is the softmax (sigmoid for binary logits) clamped to [1e-4, 1 - 1e-4]; t_i a running average of the
detached predictions (temporal ensembling), updated before the regulariser is computed, as in the
authors' code. The targets are kept per *source pixel*: every sample comes with ``pixels``, the
dataset-wide id of the source pixel behind each sample pixel (``InstanceMapDataset``), which follows
random crops, flips, quarter turns and transposes, so a pixel's target stays attached to that pixel of
tissue whatever augmentation moved it; padding (id -1) is left out.

The buffer is (number of training pixels, C) in float16 (or uint8, quantised to 1/255; C = 2 for binary
logits: background and object), allocated when the module sees its training set (``allocate``), saved in
checkpoints and resized on load. A pixel seen several times in one step gets the mean of its predictions.
Under DDP every rank all-gathers the batch updates and applies all of them, so every rank holds the same
buffer (the modules exclude it from DDP's buffer broadcast). Only training updates or uses the buffer: in
eval mode the loss is plain CE (validation samples have no training pixels).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .ce import check_reduction, is_binary

STORAGES = {"float16": torch.float16, "uint8": torch.uint8}
_CLAMP = 1e-4


class EarlyLearningRegularization(nn.Module):
    """Cross-entropy plus ELR for multiclass logits (N, C, ...) with integer targets, or binary logits
    shaped like float targets (detection objectness; then the buffer holds one object probability).

    Args:
        beta: momentum of the target average in [0, 1) (paper configs 0.7 or 0.9).
        lam: weight of the regulariser (>= 0; paper configs 1, 3, 7); 0 gives plain CE.
        storage: ``float16`` (default) or ``uint8`` (t quantised to multiples of 1/255: 4x smaller than
            float32, but updates smaller than 1/510 are lost).
        reduction: ``mean``, ``sum`` or ``none`` (shaped like the target).
    """

    requires_pixels = True

    def __init__(self, beta: float = 0.7, lam: float = 3.0, storage: str = "float16", reduction: str = "mean"):
        super().__init__()
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta={beta} must lie in [0, 1)")
        if not lam >= 0:
            raise ValueError(f"lam={lam} must be >= 0")
        if storage not in STORAGES:
            raise ValueError(f"storage={storage!r} is not one of {', '.join(STORAGES)}")
        self.beta, self.lam, self.storage = float(beta), float(lam), storage
        self.reduction = check_reduction(reduction)
        self.register_buffer("targets", torch.zeros((0, 0), dtype=STORAGES[storage]))

    def allocate(self, num_pixels: int, num_channels: int) -> None:
        """Make room for ``num_pixels`` training pixels of ``num_channels`` classes (2 for binary logits:
        background and object),
        zeros as in the authors' code; a buffer of that shape (e.g. restored from a checkpoint) is kept."""
        shape = (int(num_pixels), int(num_channels))
        if tuple(self.targets.shape) != shape:
            self.targets = torch.zeros(shape, dtype=STORAGES[self.storage], device=self.targets.device)

    @property
    def buffer_bytes(self) -> int:
        return self.targets.numel() * self.targets.element_size()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        stored = state_dict.get(prefix + "targets")
        if stored is not None and stored.shape != self.targets.shape:
            self.targets = torch.zeros_like(stored, device=self.targets.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, pixels: torch.Tensor | None = None) -> torch.Tensor:
        logits = logits.float()
        if is_binary(logits, target):
            logits = logits.reshape(target.shape)
            cross_entropy = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
            # Two channels (background, object): a zero target is "no target yet", as in the multiclass case.
            p_object = torch.sigmoid(logits).clamp(_CLAMP, 1 - _CLAMP)
            probs = torch.stack([1 - p_object, p_object], dim=-1)
        else:
            cross_entropy = F.cross_entropy(logits, target.long(), reduction="none")
            probs = torch.softmax(logits, dim=1).clamp(_CLAMP, 1 - _CLAMP).movedim(1, -1)  # (..., C)
        loss = cross_entropy
        if self.training and self.lam > 0:
            if pixels is None or pixels.shape[: target.dim()] != target.shape or pixels.dim() > target.dim() + 1:
                raise ValueError(f"ELR needs the training samples' pixel ids shaped like the target "
                                 f"{tuple(target.shape)} (or with one more axis of ids per element), got "
                                 f"{None if pixels is None else tuple(pixels.shape)}; a hand-built "
                                 "InstanceDataModule needs pixel_ids=True")
            loss = cross_entropy + self.lam * self._regulariser(probs, pixels)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss

    def _regulariser(self, probs: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """Per-element log(1 - <t, p>) after the target update; 0 where an element has no pixel.

        ``pixels`` shaped like the target give one state per element; with one more axis (K ids per element,
        -1 = none; detection: the pixels of a grid cell) the element's prediction updates all K pixels and
        its target is their mean, so the state stays attached to the tissue however crops shift the grid."""
        ids = pixels if pixels.dim() > probs.dim() - 1 else pixels.unsqueeze(-1)  # (..., K)
        valid = ids >= 0
        if not valid.any():
            return torch.zeros(probs.shape[:-1], device=probs.device)
        if self.targets.shape[1] != probs.shape[-1] or int(ids.max()) >= self.targets.shape[0]:
            raise RuntimeError(f"ELR target buffer is {tuple(self.targets.shape)} but the batch has pixel id "
                               f"{int(ids.max())} and {probs.shape[-1]} classes: the module must call "
                               "allocate() with the training set's pixels and classes")
        fresh = probs.detach() / probs.detach().sum(dim=-1, keepdim=True)
        flat_ids = ids[valid]
        flat_fresh = fresh.unsqueeze(-2).expand(*ids.shape, fresh.shape[-1])[valid]
        all_ids, all_fresh = _gather(flat_ids, flat_fresh)
        with torch.no_grad():
            # A pixel seen several times in one step (overlapping crops, other ranks) gets the mean of its
            # predictions, once: the same update on every rank, whatever the order.
            unique, inverse = torch.unique(all_ids, return_inverse=True)
            sums = torch.zeros((len(unique), all_fresh.shape[1]), device=all_fresh.device).index_add_(0, inverse, all_fresh)
            counts = torch.zeros(len(unique), device=all_fresh.device).index_add_(0, inverse, torch.ones_like(inverse, dtype=torch.float32))
            self._write(unique, self.beta * self._read(unique) + (1.0 - self.beta) * sums / counts[:, None])
        per_id = torch.zeros((*ids.shape, probs.shape[-1]), device=probs.device)
        per_id[valid] = self._read(flat_ids)
        t = per_id.sum(dim=-2) / valid.sum(dim=-1, keepdim=True).clamp_min(1)
        agreement = (t * probs).sum(dim=-1)
        regulariser = torch.log((1.0 - agreement).clamp_min(_CLAMP))
        return torch.where(valid.any(dim=-1), regulariser, torch.zeros_like(regulariser))

    def _read(self, ids: torch.Tensor) -> torch.Tensor:
        values = self.targets[ids].float()
        return values / 255.0 if self.storage == "uint8" else values

    def _write(self, ids: torch.Tensor, values: torch.Tensor) -> None:
        if self.storage == "uint8":
            self.targets[ids] = (values * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        else:
            self.targets[ids] = values.to(self.targets.dtype)


def _gather(ids: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's (ids, values) under DDP, so all ranks apply the same updates; the inputs otherwise."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return ids, values
    world = dist.get_world_size()
    count = torch.tensor([len(ids)], device=ids.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    longest = int(max(int(c) for c in counts))
    padded_ids = torch.full((longest,), -1, dtype=ids.dtype, device=ids.device)
    padded_ids[: len(ids)] = ids
    padded_values = torch.zeros((longest, values.shape[1]), dtype=values.dtype, device=values.device)
    padded_values[: len(values)] = values
    gathered_ids = [torch.empty_like(padded_ids) for _ in range(world)]
    gathered_values = [torch.empty_like(padded_values) for _ in range(world)]
    dist.all_gather(gathered_ids, padded_ids)
    dist.all_gather(gathered_values, padded_values)
    all_ids, all_values = torch.cat(gathered_ids), torch.cat(gathered_values)
    keep = all_ids >= 0
    return all_ids[keep], all_values[keep]
