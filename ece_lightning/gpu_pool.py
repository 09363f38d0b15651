"""A pool of GPUs shared by the sweep jobs running at once on one machine (``gpu_pool`` in the config, with
``hydra/launcher=local_gpus``): each job claims ``trainer.devices`` GPUs that no other job holds, by creating
lock files, and gives them back when it ends. A lock left by a process that died is taken over."""

from __future__ import annotations

import os
import random
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .config import ConfigError

LOCK_DIR_ENV = "ECE_GPU_LOCK_DIR"


def default_lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "ece-lightning-gpu-locks")


def pool_ids(pool: str | Sequence[int]) -> list[int]:
    """GPU indices of ``gpu_pool``: ``auto`` (every visible CUDA device) or a list of indices."""
    if isinstance(pool, str):
        if pool != "auto":
            raise ConfigError(f"gpu_pool={pool!r} must be auto or a list of GPU indices, e.g. [0,1,2,3]")
        import torch

        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError("gpu_pool=auto but no CUDA device is visible here; run without gpu_pool")
        return list(range(count))
    ids = [int(i) for i in pool]
    if not ids or len(set(ids)) != len(ids) or min(ids) < 0:
        raise ConfigError(f"gpu_pool={list(pool)} must be distinct GPU indices >= 0")
    return ids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _try_lock(path: Path) -> bool:
    for _ in range(2):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                host, pid = path.read_text().split()
            except (OSError, ValueError):
                return False  # being written by its owner right now
            if host == socket.gethostname() and not _alive(int(pid)):
                path.unlink(missing_ok=True)  # its job died: take it over
                continue
            return False
        with os.fdopen(handle, "w") as file:
            file.write(f"{socket.gethostname()} {os.getpid()}")
        return True
    return False


@contextmanager
def claim_gpus(count: int, pool: Sequence[int], lock_dir: str | Path | None = None, poll_s: float = 2.0,
               timeout_s: float | None = None) -> Iterator[list[int]]:
    """Hold ``count`` GPUs of ``pool`` that no other job holds (waiting for them), yield their indices and
    release them on exit. All or none are taken at a time, so jobs that want several never deadlock."""
    if count < 1 or count > len(pool):
        raise ConfigError(f"trainer.devices={count} GPUs per job cannot come from gpu_pool={list(pool)}; ask for "
                          f"1..{len(pool)}")
    folder = Path(lock_dir) if lock_dir else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    while True:
        claimed = []
        for gpu in pool:
            if len(claimed) == count:
                break
            if _try_lock(folder / f"gpu-{gpu}.lock"):
                claimed.append(gpu)
        if len(claimed) == count:
            break
        for gpu in claimed:
            (folder / f"gpu-{gpu}.lock").unlink(missing_ok=True)
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise TimeoutError(f"no {count} free GPU(s) of {list(pool)} within {timeout_s:.0f} s (locks in {folder})")
        time.sleep(poll_s * (0.5 + random.random()))
    try:
        yield claimed
    finally:
        for gpu in claimed:
            (folder / f"gpu-{gpu}.lock").unlink(missing_ok=True)
