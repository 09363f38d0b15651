"""`pytest --nbmake notebooks` (part of `make test`): the notebooks run on a tiny sweep made here through
ece-train, unless ECE_SWEEP_DIR already names one."""

import os
import shutil
import tempfile

from ece_lightning.analysis.examples import make_example_sweep

_made: list[str] = []


def pytest_configure(config):
    if os.environ.get("ECE_SWEEP_DIR"):
        return
    folder = tempfile.mkdtemp(prefix="ece_notebook_sweep_")
    _made.append(folder)
    sweep = make_example_sweep(folder)
    os.environ.update({"ECE_SWEEP_DIR": str(sweep), "ECE_DYNAMICS_DIR": str(sweep), "ECE_SPARSITY": "0.5",
                       "MPLBACKEND": "Agg"})


def pytest_unconfigure(config):
    for folder in _made:
        shutil.rmtree(folder, ignore_errors=True)
