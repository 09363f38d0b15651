"""A pool of GPUs shared by the sweep jobs running at once on one machine (``gpu_pool`` in the config, with
``hydra/launcher=local_gpus``): each job claims ``trainer.devices`` GPUs that no other job holds and gives them
back when it ends. A claim is an exclusive ``flock`` on a per-GPU lock file, so the kernel releases it when its
process dies (a killed sweep leaves nothing to clean up)."""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..errors import ConfigError

LOCK_DIR_ENV = "ECE_GPU_LOCK_DIR"


def default_lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "ece-lightning-gpu-locks")


def pool_ids(pool: str | int | Sequence[int]) -> list[int]:
    """GPU indices of ``gpu_pool``: ``auto`` (every visible CUDA device) or a list of indices (as CUDA numbers
    them, i.e. relative to ``CUDA_VISIBLE_DEVICES``)."""
    if isinstance(pool, str):
        if pool != "auto":
            raise ConfigError(f"gpu_pool={pool!r} must be auto or a list of GPU indices, e.g. [0,1,2,3]")
        import torch

        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError("gpu_pool=auto but no CUDA device is visible here; run without gpu_pool")
        return list(range(count))
    if isinstance(pool, int):
        pool = [pool]
    ids = [int(i) for i in pool]
    if not ids or len(set(ids)) != len(ids) or min(ids) < 0:
        raise ConfigError(f"gpu_pool={list(pool)} must be distinct GPU indices >= 0")
    return ids


def _try_lock(path: Path) -> IO | None:
    handle = open(path, "a+")  # noqa: SIM115 - held open for the claim's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")  # who holds it, for a person looking
    handle.flush()
    return handle


@contextmanager
def claim_gpus(count: int, pool: Sequence[int], lock_dir: str | Path | None = None, poll_s: float = 2.0,
               timeout_s: float | None = None) -> Iterator[list[int]]:
    """Hold ``count`` GPUs of ``pool`` that no other job holds (waiting for them), yield their indices and
    release them on exit. All or none are taken at a time, so jobs that want several never deadlock."""
    if count < 1 or count > len(pool):
        raise ConfigError(f"trainer.devices={count} GPUs per job cannot come from gpu_pool={list(pool)}; ask for "
                          f"1..{len(pool)}")
    folder = Path(lock_dir) if lock_dir else default_lock_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the GPU lock folder {folder} ({error}); set {LOCK_DIR_ENV}") from None
    started = time.monotonic()
    while True:
        held: dict[int, IO] = {}
        for gpu in pool:
            if len(held) == count:
                break
            handle = _try_lock(folder / f"gpu-{gpu}.lock")
            if handle is not None:
                held[gpu] = handle
        if len(held) == count:
            break
        for handle in held.values():
            handle.close()  # closing drops the flock
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise TimeoutError(f"no {count} free GPU(s) of {list(pool)} within {timeout_s:.0f} s (locks in {folder})")
        time.sleep(poll_s * (0.5 + random.random()))
    try:
        yield list(held)
    finally:
        for handle in held.values():
            handle.close()
