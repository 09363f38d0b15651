"""Training order and per-epoch random draws that are a function of (seed, epoch) alone, so a run resumed
from a checkpoint replays the epochs it missed exactly as an uninterrupted run would, with or without
loader worker processes."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed of (seed, epoch), different for every pair."""
    return int(np.random.SeedSequence([int(seed), int(epoch), 0xE90C]).generate_state(2, np.uint32)
               .astype(np.uint64).dot([1 << 31, 1]))


def _mixed_seed(*words: int) -> int:
    """A 63-bit seed from non-negative integers (each split into 32-bit words)."""
    state = np.random.SeedSequence([part for word in words for part in (word & 0xFFFFFFFF, word >> 32)])
    return int(state.generate_state(1, np.uint64)[0] >> np.uint64(1))


def _rank_seed(seed: int) -> int:
    """The seed of this process's draws: ``seed`` itself in a single process and on rank 0, another one on
    each other rank of a distributed run, so the ranks do not repeat each other's crops and augmentation."""
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    return seed if rank == 0 else _mixed_seed(seed, rank, 0xD15C)


def _seed_generators(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class EpochItem(NamedTuple):
    """What ``EpochShuffle`` yields: the dataset item and the seed of its epoch's draws in this process
    (see ``enter_epoch``)."""

    index: int
    epoch_seed: int


_worker_epoch_seed: int | None = None


def enter_epoch(epoch_seed: int) -> None:
    """The dataset calls this with every ``EpochItem``. In a loader worker process, the first item of an
    epoch seeds the worker's torch, numpy and ``random`` generators from (epoch seed, worker id), so its
    draws (random crops, augmentation) depend on the epoch and the worker only: not on the epochs a
    persistent worker served before, nor on the base seed the loader drew from the main process's
    generator (which a resumed run does not restore). Worker ``k`` loads batches k, k + W, ... in order, so
    the epoch's samples are the same for the same number of workers W. In the main process it does nothing:
    ``EpochShuffle`` seeded it when the epoch started."""
    global _worker_epoch_seed
    worker = torch.utils.data.get_worker_info()
    if worker is None or _worker_epoch_seed == epoch_seed:
        return
    _worker_epoch_seed = epoch_seed
    _seed_generators(_mixed_seed(epoch_seed, worker.id, 0x30BE))


class EpochShuffle(Sampler[EpochItem]):
    """A random permutation of ``size`` items per epoch, drawn from ``(seed, epoch)``. When the permutation
    starts, the process's torch, numpy and ``random`` generators are seeded from ``(seed, epoch)`` as well, so
    the per-item draws that follow in the loading process (random crops, augmentation) and the training steps
    of the epoch do not depend on what ran before the epoch (e.g. in the process a run was resumed in). It
    yields ``EpochItem(index, epoch_seed)``, from which loader workers seed themselves (``enter_epoch``). In a
    distributed run the order is the same on every rank (Lightning's wrapper splits it) and the draws' seed
    differs per rank (rank 0 keeps the single-process one).

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

    def __iter__(self) -> Iterator[EpochItem]:
        epoch = self.current_epoch() if self.current_epoch is not None else self.epoch
        seed = epoch_seed(self.seed, epoch)
        draws = _rank_seed(seed)
        _seed_generators(draws)
        # The order is the same on every rank: Lightning's distributed wrapper splits it between them.
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(seed)).tolist()
        for index in order:
            yield EpochItem(index, draws)


class EvaluationShard(DistributedSampler):
    """Validation or test items of one of ``num_replicas`` processes: ``rank``, ``rank + W``, ... in order,
    so every item is evaluated by exactly one process. Lightning's own choice for evaluation (a
    ``DistributedSampler``) pads the split with repeated items up to a multiple of W, which counts them twice
    in the metrics; Lightning leaves a sampler that is already a ``DistributedSampler`` in place. The
    processes may then run different numbers of evaluation steps, which is safe here: metrics and logged
    values are synchronised once at the epoch's end, not per step."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples
