import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# A run of a few steps on tiny tiles with a tiny U-Net.
TINY = [
    "trainer.max_epochs=1", "model.base_channels=4", "model.depth=2", "dataset.image_size=32",
    "dataset.num_train=4", "dataset.num_val=2", "dataset.num_test=2", "dataset.batch_size=2",
]


def run_cli(command: str, *args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run([str(BIN / command), *args], cwd=REPO_ROOT, env=environment, capture_output=True,
                          text=True, timeout=timeout)
