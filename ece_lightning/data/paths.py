"""Where the real datasets live: ``ECE_DATASETS`` or ``../shared/datasets`` beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def datasets_dir() -> Path:
    """The folder holding the real datasets (it may not exist: callers say what is missing)."""
    return Path(os.environ.get("ECE_DATASETS", REPO_ROOT.parent / "shared" / "datasets")).expanduser()
