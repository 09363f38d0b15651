import json

import numpy as np
import pytest

from ece_lightning.data.prepare import prepare_dataset
from ece_lightning.data.readers import DatasetError

from . import native

SPLIT = {"method": "random", "test": 1, "val": 1, "seed": 0}


def prepare(root, cache, **kwargs):
    return prepare_dataset("cpm_tiny", "cpm15_miccai", root, cache, split=kwargs.pop("split", SPLIT), **kwargs)


def test_cache_round_trip_manifest_and_summary(tmp_path):
    root = native.write_cpm15_miccai(tmp_path / "raw", count=4)
    prepared = prepare(root, tmp_path / "cache")
    assert prepared.path == tmp_path / "cache" / "cpm_tiny" and not prepared.reused
    manifest = json.loads((prepared.path / "manifest.json").read_text())
    assert sorted(sum(manifest["splits"].values(), [])) == [f"image0{i}" for i in range(1, 5)]
    assert [len(manifest["splits"][s]) for s in ("train", "val", "test")] == [2, 1, 1]
    assert len(manifest["sources"]) == 8 and all(len(sha) == 64 for _, _, sha in manifest["sources"])
    sample = prepared.load("image02")
    np.testing.assert_array_equal(sample.instances, native.disc_instances())
    assert sample.image.dtype == np.uint8 and sample.image.shape == (64, 64, 3)
    summary = prepared.summary()
    assert "4 images, 12 instances" in summary and "train     2 images       6 objects" in summary


def test_preparing_again_is_a_no_op_until_a_source_changes(tmp_path):
    root = native.write_cpm15_miccai(tmp_path / "raw", count=3)
    first = prepare(root, tmp_path / "cache")
    stamp = (first.path / "manifest.json").stat().st_mtime_ns
    again = prepare(root, tmp_path / "cache")
    assert again.reused and (again.path / "manifest.json").stat().st_mtime_ns == stamp
    assert "cache current" in again.summary()
    (root / "image01_mask.txt").write_text("64 64\n" + "\n".join(["0"] * 64 * 64))
    rebuilt = prepare(root, tmp_path / "cache")
    assert not rebuilt.reused and rebuilt.manifest["empty_images"] == ["image01"]  # zero objects: allowed, reported
    assert not prepare(root, tmp_path / "cache", split={**SPLIT, "seed": 1}).reused  # split settings are in the key


def test_a_failure_leaves_no_half_written_cache_and_keeps_the_old_one(tmp_path):
    root = native.write_cpm15_miccai(tmp_path / "raw", count=3)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="image03.png: unreadable or corrupt image"):
        (root / "image03.png").write_bytes(b"garbage")
        prepare(root, cache)
    assert not (cache / "cpm_tiny").exists() and [p for p in cache.iterdir() if p.suffix != ".lock"] == []
    native.write_cpm15_miccai(root, count=3)
    good = prepare(root, cache)
    (root / "image02.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError):
        prepare(root, cache)
    assert [p.name for p in cache.iterdir() if p.suffix != ".lock"] == ["cpm_tiny"]
    assert json.loads((cache / "cpm_tiny" / "manifest.json").read_text())["key"] == good.manifest["key"]


def test_non_strict_preparation_skips_and_reports(tmp_path):
    root = native.write_cpm15_miccai(tmp_path / "raw", count=4)
    (root / "image03.png").write_bytes(b"garbage")
    (root / "image05_mask.txt").write_text("1 1\n0\n")
    prepared = prepare(root, tmp_path / "cache", strict=False, split={"method": "random", "test": 1, "val": 1})
    skipped = prepared.manifest["skipped"]
    assert len(skipped) == 2 and "image05_mask.txt (annotation without image)" in skipped[0]
    assert "image03.png: unreadable or corrupt image" in skipped[1]
    assert "skipped 2:" in prepared.summary() and len(prepared.manifest["samples"]) == 3


def test_degenerate_polygons_are_counted_as_warnings(tmp_path):
    root = native.write_monuseg(tmp_path / "monuseg")
    prepared = prepare_dataset("m", "monuseg", root, tmp_path / "cache", split={"method": "given", "val": 1})
    assert prepared.splits["test"] == ["TCGA-DD-0004-01Z-00-DX1"]
    assert len(prepared.manifest["warnings"]) == 3 and "warnings 3:" in prepared.summary()


def test_points_only_datasets_prepare_but_refuse_segmentation(tmp_path):
    from ece_lightning.data.sources import PreparedSource

    root = native.write_crchisto(tmp_path / "crc", count=5)
    prepared = prepare_dataset("crc", "crchisto", root, tmp_path / "cache", split={"method": "random", "test": 1, "val": 1})
    assert prepared.manifest["annotation"] == "points" and prepared.load("img1").points.shape == (3, 2)
    with pytest.raises(DatasetError, match="centroid|points only"):
        PreparedSource("crc", "crchisto", str(root), str(tmp_path / "cache"),
                       split={"method": "random", "test": 1, "val": 1}).load()


def _prepare_in_a_process(root, cache, queue):
    queue.put(prepare(root, cache).reused)


def test_jobs_started_together_prepare_the_dataset_once(tmp_path):
    """Two sweep jobs reaching an unprepared dataset at once: one prepares it, the other waits and reuses it."""
    import multiprocessing

    root = native.write_cpm15_miccai(tmp_path / "raw", count=6)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    jobs = [context.Process(target=_prepare_in_a_process, args=(root, tmp_path / "cache", queue)) for _ in range(2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=120)
    assert [job.exitcode for job in jobs] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in jobs) == [False, True]
