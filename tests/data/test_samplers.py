import random

import numpy as np
import torch

from ece_lightning.data.samplers import EpochShuffle, epoch_seed


def test_order_is_a_function_of_seed_and_epoch():
    first = list(EpochShuffle(50, seed=1, current_epoch=lambda: 3))
    assert sorted(first) == list(range(50))
    torch.manual_seed(123)  # whatever ran before does not matter
    assert list(EpochShuffle(50, seed=1, current_epoch=lambda: 3)) == first
    assert list(EpochShuffle(50, seed=1, current_epoch=lambda: 4)) != first
    assert list(EpochShuffle(50, seed=2, current_epoch=lambda: 3)) != first
    sampler = EpochShuffle(50, seed=1)
    sampler.set_epoch(3)  # Lightning's hook, used without a trainer
    assert list(sampler) == first and len(sampler) == 50


def test_epoch_start_seeds_the_process_generators():
    draws = []
    for noise in (1, 2):
        torch.manual_seed(noise)
        np.random.seed(noise)
        random.seed(noise)
        list(EpochShuffle(10, seed=5, current_epoch=lambda: 7))
        draws.append((torch.rand(3).tolist(), np.random.rand(), random.random()))
    assert draws[0] == draws[1]
    assert len({epoch_seed(s, e) for s in range(20) for e in range(50)}) == 1000
