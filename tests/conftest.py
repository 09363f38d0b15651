"""What every test shares: the real datasets (found through ``$ECE_DATASETS``, which the tests point at
``../shared/datasets`` beside the repository when it is unset) and the one way a test that needs them skips
when they are absent: the ``data`` marker or the ``cpm15_dir`` / ``monuseg_dir`` fixtures, both through
``require_dataset``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: the real datasets the tests use, by the name tests ask for them with
DATASETS = {"cpm15": "cpm15_miccai2015_train", "monuseg": "monuseg2018"}

os.environ.setdefault("ECE_DATASETS", str(REPO_ROOT.parent / "shared" / "datasets"))
# Keep W&B away from the network.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def require_dataset(name: str) -> Path:
    """The folder of real dataset ``name`` (a key of ``DATASETS``); skips the calling test, with the reason, when
    it is not there."""
    from ece_lightning.data.paths import datasets_dir

    folder = datasets_dir() / DATASETS[name]
    if not folder.is_dir():
        pytest.skip(f"real {name} data not found at {folder} (set ECE_DATASETS to the folder holding "
                    f"{DATASETS[name]}/)")
    return folder


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "data(name): needs the real dataset <name> (a key of tests.conftest.DATASETS)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("data"):
        for name in marker.args:
            require_dataset(name)


@pytest.fixture(scope="session", autouse=True)
def _private_dataset_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Prepared-dataset caches of the tests (and the CLIs they start) go to a temporary folder."""
    os.environ["ECE_CACHE"] = str(tmp_path_factory.mktemp("dataset_cache"))


@pytest.fixture(scope="session")
def cpm15_dir() -> Path:
    return require_dataset("cpm15")


@pytest.fixture(scope="session")
def monuseg_dir() -> Path:
    return require_dataset("monuseg")


@pytest.fixture(scope="session")
def cpm15_masks(cpm15_dir: Path) -> dict[str, np.ndarray]:
    from ece_lightning.data.readers.cpm import read_cpm15_mask

    return {p.name.removesuffix("_mask.txt"): read_cpm15_mask(p) for p in sorted(cpm15_dir.glob("image*_mask.txt"))}
