"""A non-editable install works: the wheel holds every config file, and its commands run from any folder
(slow: `make test-full` and CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .cli.helpers import TINY
from .data import native

REPO_ROOT = Path(__file__).resolve().parents[1]


def _tracked_copy(target: Path) -> Path:
    """The repository's tracked files (and untracked, not ignored ones) copied to ``target``: building there keeps
    pip's build/ folder out of the checkout and builds what a fresh clone would."""
    listing = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO_ROOT,
                             capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listing):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed (``--no-deps``; the dependencies are this
    environment's, seen through a path file); returns its bin folder."""
    root = tmp_path_factory.mktemp("packaging")
    source = _tracked_copy(root / "source")
    wheels = root / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(source)], check=True, capture_output=True)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # A plain path line: the dependencies become importable, but not this environment's editable ece_lightning
    # (its finder is a .pth file there, which a path line does not run).
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(wheels.glob("ece_lightning-*.whl"))
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True)
    return venv / "bin"


@pytest.mark.slow
def test_the_wheel_holds_every_config_file(installed):
    """Every config file and every data file the package reads (the paper's tables of ece-report)."""
    wheel = next((installed.parent.parent / "wheels").glob("ece_lightning-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    package = REPO_ROOT / "ece_lightning"
    files = {str(p.relative_to(REPO_ROOT)) for p in [*(package / "conf").rglob("*.yaml"), *package.rglob("*.csv")]}
    assert "ece_lightning/analysis/paper_tables.csv" in files
    assert files <= shipped, sorted(files - shipped)


@pytest.mark.slow
def test_installed_commands_run_from_another_folder(installed, tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": ""}
    where = subprocess.run([str(installed / "python"), "-c", "import ece_lightning; print(ece_lightning.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed.parent)), where  # the wheel's copy, not the checkout
    run = tmp_path / "runs" / "tiny"
    train = subprocess.run([str(installed / "ece-train"), *TINY, f"hydra.run.dir={run}"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    assert (run / "metrics.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    report = subprocess.run([str(installed / "ece-report"), str(tmp_path / "runs")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "| synthetic | segmentation | unet | ce | 1.000 | 0 |" in report.stdout
    image = tmp_path / "image.png"
    Image.fromarray(np.full((64, 64, 3), 230, np.uint8)).save(image)
    predict = subprocess.run([str(installed / "ece-predict"), f"checkpoint={run / 'checkpoints' / 'last.ckpt'}",
                              f"input={image}", f"output={tmp_path / 'pred'}", "tile=32", "overlap=8", "progress=false"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert predict.returncode == 0, predict.stderr[-3000:]
    assert (tmp_path / "pred" / "summary.json").is_file()
    raw = native.write_cpm15_miccai(tmp_path / "raw", count=8)
    prepare = subprocess.run([str(installed / "ece-prepare"), "dataset=cpm15", f"paths.raw={raw}"], cwd=tmp_path,
                             env={**env, "ECE_CACHE": str(tmp_path / "cache")}, capture_output=True, text=True,
                             timeout=300)
    assert prepare.returncode == 0, prepare.stderr[-3000:]
    assert "cpm15 (cpm15_miccai): 8 images" in prepare.stdout
