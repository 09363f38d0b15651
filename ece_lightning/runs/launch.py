"""Launch checks: how sweeps reach GPUs (the supported paths, a check that refuses the one that silently
repeats a sweep), the GPU claim of a job in a GPU pool, and a dry run of the SLURM job script.

Lightning's ``strategy=ddp`` (also what ``auto`` picks for several devices) starts one copy of the whole
command per extra device; under a Hydra multirun each copy would run the whole sweep again. Supported:
- one device per job, any launcher (``hydra/launcher=local`` runs several at once);
- several devices per job under ``hydra/launcher=slurm``: SLURM starts one task per GPU and Lightning
  attaches to them instead of re-launching;
- ``trainer.strategy=ddp_spawn`` (processes spawned inside the job) anywhere, single runs included.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError

SPAWNING_STRATEGIES = ("ddp_spawn", "ddp_notebook", "ddp_fork")


def _spawns(strategy: str) -> bool:
    """Whether a strategy starts its processes inside the job (ddp_spawn and its variants such as
    ddp_spawn_find_unused_parameters_true, ddp_notebook, ddp_fork)."""
    return strategy.startswith(SPAWNING_STRATEGIES)


def requested_devices(trainer: DictConfig | dict[str, Any]) -> int | None:
    """How many devices ``trainer.devices`` asks for (None: all available, e.g. -1 or "auto")."""
    devices = trainer.get("devices", 1)
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices)
    if isinstance(devices, str):
        if devices.strip().lstrip("-").isdigit():
            devices = int(devices)
        elif "," in devices:
            return len([d for d in devices.split(",") if d.strip()])
        else:
            return None
    return None if devices == -1 else int(devices)


def visible_devices(trainer: DictConfig | dict[str, Any]) -> int | None:
    """How many devices "all available" (``trainer.devices`` auto or -1) means here: the CUDA devices this
    process sees for a GPU (or auto) accelerator; 1 for ``devices=auto`` on the CPU (Lightning's choice);
    None when it cannot tell (e.g. -1 on the CPU, which Lightning refuses itself)."""
    import torch

    accelerator = str(trainer.get("accelerator", "auto"))
    devices = str(trainer.get("devices", 1)).strip()
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.device_count()
    if devices == "auto" and accelerator in ("cpu", "auto"):
        return 1
    return None


def check_launch(trainer: DictConfig, multirun: bool, launcher_target: str | None) -> None:
    """ConfigError for a Hydra multirun whose jobs would start DDP by re-launching the command."""
    if not multirun:
        return
    devices = requested_devices(trainer)
    if devices is None:  # "all available" is one device on a one-GPU (or CPU-only) machine
        devices = visible_devices(trainer)
    strategy = str(trainer.get("strategy", "auto"))
    if (devices is not None and devices <= 1) or _spawns(strategy):
        return
    if launcher_target and launcher_target.endswith("SlurmLauncher"):  # not submitit_local: one task per job
        return
    raise ConfigError(
        f"trainer.devices={trainer.get('devices')} with trainer.strategy={strategy} in a Hydra multirun would "
        "re-launch the whole sweep once per device. Use hydra/launcher=slurm (one SLURM task per GPU), or "
        "trainer.strategy=ddp_spawn, or one device per job (trainer.devices=1; hydra/launcher=local runs several "
        "jobs at once)")


def check_spawn_logging(trainer: DictConfig, logger: DictConfig | None) -> None:
    """ConfigError for processes spawned inside the job (ddp_spawn) with the CSV logger, whose writer breaks
    there (PyTorch Lightning 2.x: "dict contains fields not in fieldnames" at the test step, measured)."""
    if _spawns(str(trainer.get("strategy", "auto"))) and logger and "csv" in logger:
        raise ConfigError(f"trainer.strategy={trainer.strategy} with the CSV logger fails in PyTorch Lightning 2.x "
                          "(its writer loses its header between the spawned fit and test processes); use logger=none "
                          "(metrics.json is still written) or trainer.strategy=ddp")


def slurm_job_script(launcher: DictConfig, command: str = "ece-train") -> str:
    """The sbatch script that ``hydra/launcher=slurm`` submits for a job, built as hydra-submitit-launcher
    builds its executor, without submitting (no cluster needed). ``launcher`` is the composed, resolvable
    ``hydra.launcher`` node."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = OmegaConf.to_container(launcher, resolve=True)
    params.pop("_target_", None)
    folder = params.pop("submitit_folder")
    with _slurm_available(submitit.SlurmExecutor):
        executor = submitit.AutoExecutor(cluster="slurm", folder=folder,
                                         slurm_max_num_timeout=params.pop("max_num_timeout", 0))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{key if key in base else f"slurm_{key}": value for key, value in params.items()})
    return executor._executor._make_submission_file_text(command, "dry-run")


@contextmanager
def _slurm_available(executor_class: type):
    """submitit refuses to build a SLURM executor where ``srun`` is missing (its ``affinity`` is 0); a dry run only
    needs the script's text, so it is told SLURM is there for the block."""
    original = executor_class.__dict__["affinity"]
    executor_class.affinity = classmethod(lambda cls: 1)
    try:
        yield
    finally:
        executor_class.affinity = original


def gpu_claim(cfg: DictConfig) -> AbstractContextManager[list[int] | None]:
    """A context holding this job's GPUs from ``gpu_pool`` (their indices; see ``gpu_pool.claim_gpus``), or
    yielding None when there is no pool."""
    import logging

    from .gpu_pool import claim_gpus, pool_ids

    pool = cfg.get("gpu_pool")
    if pool is None:
        return nullcontext(None)
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator not in ("gpu", "cuda", "auto"):
        raise ConfigError(f"gpu_pool hands out GPUs but trainer.accelerator={accelerator}; use trainer=gpu (or drop "
                          "gpu_pool)")
    count = requested_devices(cfg.trainer)
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if (count is None or count > 1) and not _spawns(strategy):
        raise ConfigError(f"gpu_pool with trainer.devices={cfg.trainer.get('devices')!r} and trainer.strategy={strategy}: "
                          "Lightning would re-launch the command for every extra GPU and each copy would claim GPUs "
                          "again; use trainer.strategy=ddp_spawn, one GPU per job, or hydra/launcher=slurm")
    if count is None:
        raise ConfigError(f"with gpu_pool, trainer.devices must say how many GPUs a job takes (got "
                          f"{cfg.trainer.get('devices')!r})")
    ids = pool_ids(pool if isinstance(pool, str) else list(pool))
    logging.getLogger(__name__).info("waiting for %d GPU(s) of the pool %s", count, ids)
    return claim_gpus(count, ids)
