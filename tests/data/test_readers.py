import numpy as np
import pytest

from ece_lightning.data.readers.cpm import read_cpm15_mask


def test_reads_the_ascii_layout_x_fastest(tmp_path):
    path = tmp_path / "image01_mask.txt"
    path.write_text("3 2\n0\n1\n1\n2\n0\n0\n")
    np.testing.assert_array_equal(read_cpm15_mask(path), [[0, 1, 1], [2, 0, 0]])


@pytest.mark.parametrize("text, message", [
    ("3 2\n0\n1\n", "header says 3x2 = 6 labels but the file holds 2"),
    ("3\n0\n1\n1\n", "first line must be 'W H'"),
    ("1 1\nx\n", "not an ASCII CPM-15 mask"),
])
def test_malformed_masks_name_the_file_and_problem(tmp_path, text, message):
    path = tmp_path / "bad_mask.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad_mask.txt") as info:
        read_cpm15_mask(path)
    assert message in str(info.value)


def test_real_cpm15_masks_hold_the_published_nucleus_count(cpm15_masks):
    assert len(cpm15_masks) == 15
    assert sum(len(np.unique(m)) - 1 for m in cpm15_masks.values()) == 2905


def _write_pair(folder, key, mask, image_size=None):
    from PIL import Image

    h, w = image_size or mask.shape
    Image.fromarray(np.full((h, w, 4), 200, np.uint8), "RGBA").save(folder / f"{key}.png")
    lines = [f"{mask.shape[1]} {mask.shape[0]}", *map(str, mask.ravel())]
    (folder / f"{key}_mask.txt").write_text("\n".join(lines) + "\n")


def test_reads_a_miccai_layout_folder(tmp_path):
    from ece_lightning.data.readers.cpm import read_cpm15_miccai

    mask = np.zeros((4, 6), np.int32)
    mask[1:3, 2:4] = 1
    _write_pair(tmp_path, "image01", mask)
    [(key, image, instances)] = read_cpm15_miccai(tmp_path)
    assert key == "image01" and image.shape == (4, 6, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(instances, mask)


@pytest.mark.parametrize("problem, message", [
    ("missing", "CPM-15 folder not found"),
    ("empty", "no imageNN.png files"),
    ("no_mask", "image02.png (no mask)"),
    ("no_image", "image03_mask.txt (no image)"),
    ("size", "mask is 6x4 but image01.png is 5x4"),
    ("corrupt", "image01.png: unreadable image"),
])
def test_bad_miccai_layouts_are_named(tmp_path, problem, message):
    from ece_lightning.data.readers.cpm import read_cpm15_miccai

    folder = tmp_path / "cpm"
    if problem != "missing":
        folder.mkdir()
    mask = np.zeros((4, 6), np.int32)
    if problem in ("no_mask", "no_image", "size", "corrupt"):
        _write_pair(folder, "image01", mask, image_size=(4, 5) if problem == "size" else None)
    if problem == "no_mask":
        _write_pair(folder, "image02", mask)
        (folder / "image02_mask.txt").unlink()
    if problem == "no_image":
        _write_pair(folder, "image03", mask)
        (folder / "image03.png").unlink()
    if problem == "corrupt":
        (folder / "image01.png").write_bytes(b"not a png")
    with pytest.raises((FileNotFoundError, ValueError)) as info:
        read_cpm15_miccai(folder)
    assert message in str(info.value)


def test_real_cpm15_split_serves_random_crops_and_exhaustive_tiles(cpm15_dir):
    from ece_lightning.data.datamodule import SegmentationDataModule

    dm = SegmentationDataModule(source="cpm15_miccai", root=str(cpm15_dir), sparsity=0.3, crop_size=64,
                                crops_per_epoch=10, eval_tile=128, batch_size=5)
    dm.setup("fit")
    assert [len(dm.datasets[s].images) for s in ("train", "val", "test")] == [8, 3, 4]
    assert sum(dm.annotated_objects[s][1] for s in ("train", "val", "test")) == 2905
    annotated, total = dm.annotated_objects["train"]
    assert abs(annotated / total - 0.3) < 0.02
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (5, 3, 64, 64)
    test = dm.datasets["test"]
    assert test.instances is not None and len(test) == sum(
        (im.shape[0] // 128) * (im.shape[1] // 128) for im in test.images)
