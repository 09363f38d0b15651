"""experiments/gpu_checks.sh, the one command a session lent a GPU runs: its SMOKE=1 mode runs every
check tiny on the CPU, so the script is not first tried on rented GPU time."""

import os
import subprocess

from .helpers import REPO_ROOT


def test_gpu_checks_script_runs_every_check_in_smoke_mode(tmp_path):
    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path), "WANDB_MODE": "disabled"}
    result = subprocess.run(["bash", str(REPO_ROOT / "experiments" / "gpu_checks.sh")], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout
    for header in ("## 1. loss", "## 2a. training step, compiled", "## 2b. training step, not compiled",
                   "## 3. profile", "## 4. skipped"):
        assert header in out
    assert "| cpu | 2x2x32x32 | ece |" in out
    assert out.count("of the resident-batch ceiling") == 2 and out.count("2 loader processes") == 2
    assert "run_training_batch" in out and "train_dataloader_next" in out  # the profile's rows
    assert (tmp_path / "profile" / "metrics.json").is_file()
