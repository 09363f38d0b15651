"""File helpers: every result is written under a temporary name beside its final one and renamed into place,
so a crash never leaves a half-written file behind; and one content fingerprint for settings."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def partial_path(path: str | Path, suffix: str = ".partial") -> Path:
    """The temporary name beside ``path`` that a file is written under before it is renamed into place (its folder
    is made). ``suffix`` ends it: writers that pick a format by extension (``np.save``, PIL) need the real one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}{suffix}")


def commit(partial: str | Path, path: str | Path) -> Path:
    """Rename a finished ``partial`` file onto ``path`` (atomic on one file system)."""
    os.replace(partial, path)
    return Path(path)


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".partial") -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write; renamed onto ``path`` when the block succeeds,
    removed when it fails (see ``partial_path``)."""
    partial = partial_path(path, suffix)
    try:
        yield partial
        commit(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as partial:
        partial.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def atomic_save_npy(path: str | Path, array: Any) -> Path:
    """``np.save`` to ``path`` atomically."""
    import numpy as np

    with atomic_path(path, suffix=".npy") as partial:
        np.save(partial, array)
    return Path(path)


def atomic_save_image(path: str | Path, image: Any) -> Path:
    """An RGB uint8 (H, W, 3) array as an image file (format from ``path``'s suffix), atomically."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as partial:
        Image.fromarray(image).save(partial)
    return path


def atomic_save_figure(path: str | Path, figure: Any, **options: Any) -> Path:
    """A matplotlib figure saved to ``path`` (format from its suffix) atomically."""
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as partial:
        figure.savefig(partial, **options)
    return path


def fingerprint(data: Any) -> str:
    """SHA-1 of ``data`` as canonical JSON (sorted keys; non-JSON values by ``str``): equal settings, equal
    fingerprint."""
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
