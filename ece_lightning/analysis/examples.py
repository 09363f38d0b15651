"""A tiny finished sweep to try the notebooks on (and to test them): CE and ECE at 50% and 100% of the
annotations on small synthetic tiles with a tiny U-Net and the LossDynamics callback, about a minute
on 2 CPU cores. Numbers from it mean nothing; its files are those of a real sweep."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TINY_SWEEP = (
    "callbacks=loss_dynamics", "logger=csv", "loss=ce,ece", "sparsity=0.5,1.0", "model.base_channels=4",
    "model.depth=2", "dataset.image_size=48", "dataset.num_train=6", "dataset.num_val=2", "dataset.num_test=3",
    "dataset.batch_size=3", "task.postprocess.method=watershed", "callbacks.loss_dynamics.span=3",
)


def make_example_sweep(out_dir: str | Path, epochs: int = 3) -> Path:
    """Run the tiny sweep into ``out_dir`` (one folder per run, as ``ece-train -m`` writes them) and
    return it; a failure raises RuntimeError with the end of ``ece-train``'s output."""
    out_dir = Path(out_dir)
    command = [str(Path(sys.executable).parent / "ece-train"), "-m", *TINY_SWEEP, f"trainer.max_epochs={epochs}",
               f"hydra.sweep.dir={out_dir}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"example sweep failed ({' '.join(command)}):\n{result.stderr[-3000:]}")
    return out_dir
