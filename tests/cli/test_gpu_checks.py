"""experiments/gpu_checks.sh, the one command a session lent a GPU runs: its SMOKE=1 mode runs every
check tiny on the CPU, so the script is not first tried on rented GPU time."""

import os
import subprocess

import pytest

from .helpers import BIN, REPO_ROOT


@pytest.mark.slow  # every GPU check in smoke mode on CPU (about 40 s): make test-full
def test_gpu_checks_script_runs_every_check_in_smoke_mode(tmp_path):
    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path), "WANDB_MODE": "disabled", "BIN": str(BIN)}
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
    assert out.rstrip().endswith("all checks ran")
    assert all((tmp_path / f"{name}.log").is_file() for name in ("1", "2a", "2b", "3"))


def test_gpu_checks_script_reports_a_failing_check_and_runs_the_others(tmp_path):
    """CHECKS picks checks; a check that fails (here: the loss benchmark, refused by a stand-in tool) is reported
    with its log's last lines, the next one (2b) still runs, and the script exits 1."""
    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path), "CHECKS": "1 2b", "BIN": str(tmp_path / "bin")}
    (tmp_path / "bin").mkdir()
    for tool in ("python", "ece-train", "ece-report"):
        (tmp_path / "bin" / tool).symlink_to(BIN / tool)
    fake = tmp_path / "bin" / "ece-bench"  # refuses `loss`, passes `train` through
    fake.write_text(f"#!/bin/bash\nif [[ $1 == loss ]]; then echo 'ece-bench: error: boom' >&2; exit 2; fi\n"
                    f"exec {BIN / 'ece-bench'} \"$@\"\n")
    fake.chmod(0o755)
    result = subprocess.run(["bash", str(REPO_ROOT / "experiments" / "gpu_checks.sh")], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    out = result.stdout
    assert out.index("## 1. loss") < out.index("ece-bench: error: boom") < out.index("## 2b. training step")
    assert "of the resident-batch ceiling" in out  # 2b ran after the failure
    assert "## 2a." not in out and "## 3." not in out
    assert out.rstrip().endswith("failed checks: 1")
