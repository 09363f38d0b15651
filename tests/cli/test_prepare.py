"""`ece-prepare` as a user meets it: the real datasets, a raw folder of theirs, and bad input."""

import json

from tests.data import native

from .helpers import run_cli


def test_real_cpm15_prepares_once_then_is_current(tmp_path, cpm15_dir):
    env = {"ECE_CACHE": str(tmp_path / "cache")}
    first = run_cli("ece-prepare", "dataset=cpm15", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "cpm15 (cpm15_miccai): 15 images, 2905 instances" in first.stdout
    assert "train     8 images" in first.stdout and "test      4 images" in first.stdout
    manifest = json.loads((tmp_path / "cache" / "cpm15" / "manifest.json").read_text())
    assert sum(s["objects"] for s in manifest["samples"]) == 2905
    again = run_cli("ece-prepare", "dataset=cpm15", env=env)
    assert again.returncode == 0 and "cache current, nothing to do" in again.stdout


def test_real_monuseg_prepares_with_every_polygon_accounted_for(tmp_path, monuseg_dir):
    result = run_cli("ece-prepare", "dataset=monuseg", env={"ECE_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "cache" / "monuseg" / "manifest.json").read_text())
    polygons = sum(s["meta"]["polygons"] for s in manifest["samples"])
    degenerate = sum(s["meta"]["degenerate_polygons"] for s in manifest["samples"])
    objects = sum(s["objects"] for s in manifest["samples"])
    assert polygons == 4951 and len(manifest["samples"]) == 13
    covered = sum(int(w.split(": ")[1].split()[0]) for w in manifest["warnings"] if "fully covered" in w)
    assert objects + degenerate + covered == 4951
    assert f"warnings {len(manifest['warnings'])}:" in result.stdout


def test_a_users_raw_folder_via_paths_raw(tmp_path):
    raw = native.write_tnbc(tmp_path / "my_tnbc")
    result = run_cli("ece-prepare", "dataset=tnbc", f"paths.raw={raw}", "overlays=2", f"overlay_dir={tmp_path / 'look'}",
                     env={"ECE_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tnbc (tnbc): 10 images, 40 instances" in result.stdout
    assert sorted(p.name for p in (tmp_path / "look").iterdir()) == ["01_1.png", "01_2.png"]
    manifest = json.loads((tmp_path / "cache" / "tnbc" / "manifest.json").read_text())
    slides = {split: {i.split("_")[0] for i in ids} for split, ids in manifest["splits"].items()}
    assert [len(slides[s]) for s in ("train", "val", "test")] == [3, 1, 1]  # slide-level 60-20-20


def test_bad_input_exits_2_naming_the_file_and_writes_nothing(tmp_path):
    raw = native.write_tnbc(tmp_path / "my_tnbc")
    (raw / "GT_02" / "02_1.png").write_bytes(b"corrupt")
    result = run_cli("ece-prepare", "dataset=tnbc", f"paths.raw={raw}", env={"ECE_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 2
    assert "02_1.png: unreadable or corrupt mask" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "cache").exists() or [p for p in (tmp_path / "cache").iterdir() if p.suffix != ".lock"] == []


def test_missing_folder_says_where_to_get_the_dataset(tmp_path):
    result = run_cli("ece-prepare", "dataset=consep", f"paths.raw={tmp_path / 'nothing'}")
    assert result.returncode == 2
    assert "dataset folder not found" in result.stderr and "warwick.ac.uk" in result.stderr


def test_generated_datasets_have_nothing_to_prepare():
    result = run_cli("ece-prepare", "dataset=synthetic")
    assert result.returncode == 2 and "nothing to prepare" in result.stderr
