"""The GPU pool of sweep jobs on one machine (gpu_pool + hydra/launcher=local_gpus), simulated with lock files
and processes: no GPU is needed to check that no two jobs ever hold the same one."""

import multiprocessing
import os
import time

import pytest
import torch
from hydra import compose, initialize_config_dir

from ece_lightning.config import CONFIG_DIR, ConfigError
from ece_lightning.runs.gpu_pool import claim_gpus, pool_ids
from ece_lightning.runs.launch import gpu_claim

from ..cli.helpers import TINY, run_cli


def _job(lock_dir, count, pool, hold_s, queue):
    with claim_gpus(count, pool, lock_dir, poll_s=0.02) as gpus:
        start = time.monotonic()
        time.sleep(hold_s)
        queue.put((tuple(gpus), start, time.monotonic()))


@pytest.mark.parametrize("jobs,count,pool", [(4, 1, [0, 1]), (3, 2, [0, 1, 2])])
def test_concurrent_jobs_never_share_a_gpu(tmp_path, jobs, count, pool):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [context.Process(target=_job, args=(tmp_path, count, pool, 0.3, queue)) for _ in range(jobs)]
    for process in processes:
        process.start()
    records = [queue.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert all(len(gpus) == count and set(gpus) <= set(pool) for gpus, _, _ in records)
    for i, (gpus_a, start_a, end_a) in enumerate(records):
        for gpus_b, start_b, end_b in records[i + 1 :]:
            if set(gpus_a) & set(gpus_b):
                assert end_a <= start_b or end_b <= start_a, "two jobs held one GPU at once"
    with claim_gpus(len(pool), pool, tmp_path, timeout_s=1) as everything:  # all given back
        assert everything == pool


def _die_holding(lock_dir):
    with claim_gpus(1, [0], lock_dir, poll_s=0.02):
        os._exit(0)  # killed while holding: no release code runs


def test_a_dead_jobs_gpu_is_free_and_a_live_one_waited_for(tmp_path):
    dead = multiprocessing.get_context("fork").Process(target=_die_holding, args=(tmp_path,))
    dead.start()
    dead.join()
    with claim_gpus(1, [0], tmp_path, timeout_s=5) as gpus:
        assert gpus == [0]
        with pytest.raises(TimeoutError, match=r"no 1 free GPU\(s\) of \[0\]"):  # held right here
            with claim_gpus(1, [0], tmp_path, poll_s=0.05, timeout_s=0.3):
                pass


def test_bad_pools_are_named():
    with pytest.raises(ConfigError, match=r"trainer.devices=3 GPUs per job cannot come from gpu_pool=\[0, 1\]"):
        with claim_gpus(3, [0, 1]):
            pass
    with pytest.raises(ConfigError, match="distinct GPU indices"):
        pool_ids([1, 1])
    with pytest.raises(ConfigError, match="must be auto or a list"):
        pool_ids("all")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device is visible"):
            pool_ids("auto")


def _compose(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def test_a_job_gets_its_gpus_from_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("ECE_GPU_LOCK_DIR", str(tmp_path))
    cfg = _compose("trainer=gpu", "trainer.devices=2", "+trainer.strategy=ddp_spawn", "gpu_pool=[4,5,6]",
                   "hydra/launcher=local_gpus")
    with gpu_claim(cfg) as gpus:
        assert gpus == [4, 5]
        with gpu_claim(_compose("trainer=gpu", "gpu_pool=[4,5,6]")) as other:  # the next job gets what is left
            assert other == [6]
    with gpu_claim(_compose()) as none:
        assert none is None


def test_a_pool_with_relaunching_ddp_is_refused():
    """Lightning's ddp re-runs the command per extra GPU: each copy would wait for GPUs its parent holds."""
    cfg = _compose("trainer=ddp", "trainer.devices=2", "gpu_pool=[0,1]")
    with pytest.raises(ConfigError, match="re-launch the command for every extra GPU.*ddp_spawn"):
        gpu_claim(cfg)


def test_a_pool_with_the_cpu_trainer_is_refused_by_ece_train(tmp_path):
    result = run_cli("ece-train", *TINY, "gpu_pool=[0,1]", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and "gpu_pool hands out GPUs but trainer.accelerator=cpu" in result.stderr
