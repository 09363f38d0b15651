"""Preparation: read a raw dataset in its native format, validate it, split it, write a fast cache.

The cache of a dataset is one folder: ``samples/<id>.npz`` (compressed image and instance map or points)
and ``manifest.json`` (format, options, the split's image ids, per-image object counts, source files with
size and SHA-256, everything skipped and why). It is built in a temporary sibling folder and renamed into
place, so a failed or interrupted preparation never leaves a half-written cache. Preparing again is a
no-op while the manifest's key (format, options, split, strictness and the source files' names, sizes and
mtimes) matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .readers import DatasetError, Item, Sample, get_format
from .splits import split_items

CACHE_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class PreparedDataset:
    """A prepared cache folder and its manifest."""

    path: Path
    manifest: dict[str, Any]
    reused: bool = False

    @property
    def splits(self) -> dict[str, list[str]]:
        return self.manifest["splits"]

    def load(self, image_id: str) -> Sample:
        with np.load(self.path / "samples" / f"{image_id}.npz") as data:
            return Sample(image_id, data["image"], instances=data["instances"] if "instances" in data else None,
                          points=data["points"] if "points" in data else None)

    def summary(self) -> str:
        """Images and objects per split, and every skipped item or warning with its reason."""
        m = self.manifest
        objects = {s["id"]: s["objects"] for s in m["samples"]}
        lines = [f"{m['dataset']} ({m['format']}): {len(m['samples'])} images, {sum(objects.values())} "
                 f"{m['annotation']} -> {self.path}" + ("  [cache current, nothing to do]" if self.reused else "")]
        for split, ids in m["splits"].items():
            lines.append(f"  {split:<5} {len(ids):>5} images {sum(objects[i] for i in ids):>7} objects")
        lines.append(f"  prepared in {m['prepare_s']:.1f} s, cache {m['cache_bytes'] / 2**20:.1f} MiB")
        if m["skipped"]:
            lines.append(f"  skipped {len(m['skipped'])}:")
            lines += [f"    - {reason}" for reason in m["skipped"]]
        if m["warnings"]:
            lines.append(f"  warnings {len(m['warnings'])}:")
            lines += [f"    - {reason}" for reason in m["warnings"]]
        return "\n".join(lines)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def _source_listing(items: list[Item], root: Path) -> list[list[Any]]:
    files = sorted({f for item in items for f in item.files})
    return [[_relative(f, root), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _key(fmt_name: str, options: dict[str, Any], split: dict[str, Any], listing: list[list[Any]]) -> str:
    text = json.dumps([CACHE_VERSION, fmt_name, options, split, listing], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(cache: Path) -> dict[str, Any] | None:
    try:
        return json.loads((cache / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _check_sample(sample: Sample, item: Item, annotation: str) -> None:
    if sample.instances is None and sample.points is None:
        raise DatasetError(f"{item.annotation}: no annotation could be read")
    if annotation == "points" and sample.points is None:
        raise DatasetError(f"{item.annotation}: expected points")


def prepare_dataset(name: str, format: str, root: str | Path, cache_dir: str | Path,  # noqa: A002
                    split: dict[str, Any] | None = None, strict: bool = True, force: bool = False,
                    options: dict[str, Any] | None = None,
                    progress: Callable[[list[Item]], Any] | None = None) -> PreparedDataset:
    """Prepare dataset ``name`` read with reader ``format`` from ``root`` into ``cache_dir/name``.

    Args:
        name: the dataset's config name (the cache folder's name).
        format: a key of ``data.readers.FORMATS``.
        root: the raw dataset's folder, in its native published layout.
        cache_dir: folder holding the caches of all datasets.
        split: ``data.splits.split_items`` arguments (method, by, val, test, seed).
        strict: raise on the first unpaired or unreadable item (default); ``False`` skips and reports it.
        force: rebuild even when the cache is current.
        options: reader options (e.g. ``cell_size`` for watershed-split datasets).
        progress: wraps the item list for a progress bar (e.g. ``tqdm``); ``None`` for none.
    """
    fmt = get_format(format)
    root, cache_dir = Path(root).expanduser(), Path(cache_dir).expanduser()
    split, options = dict(split or {}), dict(options or {})
    skipped: list[str] = []
    items = fmt.list_items(root, strict=strict, skipped=skipped, **options)
    if not items:
        raise DatasetError(f"{root}: no usable images found ({len(skipped)} skipped: {'; '.join(skipped[:5])})")
    listing = _source_listing(items, root)
    key = _key(fmt.name, options, {**split, "strict": bool(strict)}, listing)
    target = cache_dir / name
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Sweep jobs started together prepare a dataset once: the others wait here and find the cache current.
    with _exclusive(cache_dir / f".{name}.lock"):
        manifest = read_manifest(target)
        if manifest is not None and manifest.get("key") == key and not force:
            return PreparedDataset(target, manifest, reused=True)
        return _prepare(name, fmt, root, target, items, skipped, split, strict, options, key, listing, progress)


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock`` for the block (released by the kernel if the process dies)."""
    import fcntl

    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare(name: str, fmt: Any, root: Path, target: Path, items: list[Item], skipped: list[str],
             split: dict[str, Any], strict: bool, options: dict[str, Any], key: str, listing: list[list[Any]],
             progress: Callable[[list[Item]], Any] | None) -> PreparedDataset:
    """Read, check and split ``items`` into a staging folder beside ``target``, then swap it into place."""
    started = time.perf_counter()
    cache_dir = target.parent
    staging = cache_dir / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "samples").mkdir(parents=True)
    try:
        records, warnings, kept = [], [], []
        for item in (progress(items) if progress else items):
            try:
                sample = fmt.load_item(item, **options)
                _check_sample(sample, item, fmt.annotation)
            except DatasetError as error:
                if strict:
                    raise
                skipped.append(str(error))
                continue
            arrays = {"image": sample.image}
            if sample.instances is not None:
                arrays["instances"] = sample.instances.astype(np.int32)
            if sample.points is not None:
                arrays["points"] = sample.points.astype(np.float32)
            np.savez_compressed(staging / "samples" / f"{item.id}.npz", **arrays)
            warnings += sample.warnings
            kept.append(item)
            records.append({"id": item.id, "split_given": item.split, "group": item.group,
                            "height": int(sample.image.shape[0]), "width": int(sample.image.shape[1]),
                            "objects": sample.num_objects, "annotation": "instances" if sample.instances is not None
                            else "points", "meta": sample.meta})
        if not kept:
            raise DatasetError(f"{root}: every image was skipped: {'; '.join(skipped[:5])}")
        splits = split_items(kept, **split)
        annotations = {r["annotation"] for r in records}
        manifest = {
            "cache_version": CACHE_VERSION, "key": key, "dataset": name, "format": fmt.name, "root": str(root),
            "annotation": "instances" if annotations == {"instances"} else "points" if annotations == {"points"}
            else "mixed",
            "options": options, "split": split, "splits": splits, "samples": records,
            "empty_images": sorted(r["id"] for r in records if r["objects"] == 0),
            "skipped": skipped, "warnings": warnings,
            "sources": [[rel, size, _sha256(root / rel if not Path(rel).is_absolute() else Path(rel))]
                        for rel, size, _ in listing],
            "prepare_s": round(time.perf_counter() - started, 2),
        }
        manifest["cache_bytes"] = sum(p.stat().st_size for p in (staging / "samples").iterdir())
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_json_default) + "\n", encoding="utf-8")
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return PreparedDataset(target, read_manifest(target) or manifest)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _swap_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging``; the old cache is removed only once the new one is in place."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if old.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
