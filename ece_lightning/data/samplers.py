"""Training order that is a function of (seed, epoch) alone, so a run resumed from a checkpoint replays
the epochs it missed exactly as an uninterrupted run would."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed of (seed, epoch), different for every pair."""
    return int(np.random.SeedSequence([int(seed), int(epoch), 0xE90C]).generate_state(2, np.uint32)
               .astype(np.uint64).dot([1 << 31, 1]))


class EpochShuffle(Sampler[int]):
    """A random permutation of ``size`` items per epoch, drawn from ``(seed, epoch)``. When the permutation
    starts, the process's torch, numpy and ``random`` generators are seeded from ``(seed, epoch)`` as well, so
    the per-item draws that follow in the loading process (random crops, augmentation) and the training steps
    of the epoch do not depend on what ran before the epoch (e.g. in the process a run was resumed in).

    Args:
        size: number of items.
        seed: the run's seed.
        current_epoch: returns the epoch about to run (the trainer's processed-epoch count); without it the
            epoch set by ``set_epoch`` (Lightning calls it each epoch) is used.
    """

    def __init__(self, size: int, seed: int, current_epoch: Callable[[], int] | None = None):
        self.size, self.seed, self.current_epoch = int(size), int(seed), current_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        epoch = self.current_epoch() if self.current_epoch is not None else self.epoch
        seed = epoch_seed(self.seed, epoch)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(seed)).tolist()
        yield from order
