from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ece_lightning.data.paths import datasets_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
CPM15 = "cpm15_miccai2015_train"

# Keep CPU tests predictable on the 2-core CI machine and W&B away from the network.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
MONUSEG = "monuseg2018"


@pytest.fixture(scope="session", autouse=True)
def _private_dataset_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Prepared-dataset caches of the tests (and the CLIs they start) go to a temporary folder."""
    os.environ["ECE_CACHE"] = str(tmp_path_factory.mktemp("dataset_cache"))


@pytest.fixture(scope="session")
def cpm15_dir() -> Path:
    folder = datasets_dir() / CPM15
    if not folder.is_dir():
        pytest.skip(f"real CPM-15 data not found at {folder} (set ECE_DATASETS to the folder holding {CPM15}/)")
    return folder


@pytest.fixture(scope="session")
def cpm15_masks(cpm15_dir: Path) -> dict[str, np.ndarray]:
    from ece_lightning.data.readers.cpm import read_cpm15_mask

    return {p.name.removesuffix("_mask.txt"): read_cpm15_mask(p) for p in sorted(cpm15_dir.glob("image*_mask.txt"))}


@pytest.fixture(scope="session")
def monuseg_dir() -> Path:
    folder = datasets_dir() / MONUSEG
    if not folder.is_dir():
        pytest.skip(f"real MoNuSeg data not found at {folder} (set ECE_DATASETS to the folder holding {MONUSEG}/)")
    return folder
