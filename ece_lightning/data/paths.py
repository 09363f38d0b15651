"""Where the real datasets live: ``$ECE_DATASETS``, else ``datasets/`` in the folder the command runs in (the
same default as ``paths.datasets_dir`` in the config)."""

from __future__ import annotations

import os
from pathlib import Path

DATASETS_ENV = "ECE_DATASETS"


def datasets_dir() -> Path:
    """The folder holding the real datasets (it may not exist: callers say what is missing)."""
    return Path(os.environ.get(DATASETS_ENV) or "datasets").expanduser()
