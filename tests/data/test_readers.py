"""Every native-format reader on tiny fixture files written in that exact layout, and on the real data."""

import json

import numpy as np
import pytest
from PIL import Image

from ece_lightning.data.readers import FORMATS, DatasetError, get_format
from ece_lightning.data.readers.cpm import read_cpm15_mask

from . import native


def read_all(fmt_name, root, **options):
    fmt = get_format(fmt_name)
    skipped = []
    items = fmt.list_items(root, skipped=skipped, **options)
    return items, [fmt.load_item(item, **options) for item in items], skipped


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
    with pytest.raises(DatasetError, match="bad_mask.txt") as info:
        read_cpm15_mask(path)
    assert message in str(info.value)


def test_cpm15_miccai_layout(tmp_path):
    items, [first, _], _ = read_all("cpm15_miccai", native.write_cpm15_miccai(tmp_path / "cpm"))
    assert [i.id for i in items] == ["image01", "image02"] and {i.split for i in items} == {"train"}
    assert first.image.shape == (64, 64, 3) and first.image.dtype == np.uint8  # RGBA -> RGB
    np.testing.assert_array_equal(first.instances, native.disc_instances())


@pytest.mark.parametrize("name, splits", [("consep", ("Train", "Test")), ("cpm17", ("train", "test")),
                                          ("cpm15_hovernet", ())])
def test_hovernet_mat_layouts(tmp_path, name, splits):
    root = tmp_path / name
    if splits:
        native.write_hovernet(root, splits)
    else:  # CPM15 HoVer-Net: Images/ + Labels/ at the root
        native.write_hovernet(tmp_path / "x", ("Flat",))
        (tmp_path / "x" / "Flat").rename(root)
    items, samples, _ = read_all(name, root)
    assert len(items) == (4 if splits else 2)
    assert {i.split for i in items} == ({"train", "test"} if splits else {"train"})
    for sample in samples:
        np.testing.assert_array_equal(sample.instances, native.disc_instances())
        assert sample.instances.dtype == np.int32 and sample.image.shape == (64, 64, 3)
    assert samples[0].meta["objects_per_type"] == {2: 2, 3: 1}


def test_aperio_xml_is_rasterised_small_on_top_and_degenerate_skipped(tmp_path):
    items, samples, _ = read_all("monuseg", native.write_monuseg(tmp_path / "monuseg"))
    assert [i.split for i in items] == ["train", "train", "train", "test"]
    assert items[0].group == "TCGA-AA-0001"
    sample = samples[0]
    assert sample.meta["polygons"] == 4 and sample.meta["degenerate_polygons"] == 1
    assert sample.meta["microns_per_pixel"] == 0.25 and sample.meta["magnification"] == "40x"
    assert len(sample.warnings) == 1 and "region #4 of 4 is degenerate" in sample.warnings[0]
    inst = sample.instances
    assert set(np.unique(inst)) == {0, 1, 2, 3}
    assert inst[42, 42] == 3 and inst[35, 35] == 2  # the small square inside square 2 keeps its pixels
    assert (inst == 1).sum() == 16 * 16  # vertices at pixel centres 5..20 inclusive
    assert samples[-1].meta["polygons"] == 2


def test_kumar_layout_without_split_folders(tmp_path):
    native.write_monuseg(tmp_path / "m", with_test=False)
    root = tmp_path / "m" / "MoNuSeg 2018 Training Data"
    items, samples, _ = read_all("kumar", root)
    assert len(items) == 3 and {i.split for i in items} == {"train"} and samples[0].num_objects == 3


def test_tnbc_watershed_split_labels_every_foreground_pixel(tmp_path):
    items, samples, _ = read_all("tnbc", native.write_tnbc(tmp_path / "tnbc", slides=("01", "02")), cell_size=25)
    assert [i.id for i in items] == ["01_1", "01_2", "02_1", "02_2"] and items[0].group == "slide_01"
    mask, cells = native.touching_foreground()
    for sample in samples:
        assert sample.num_objects == cells
        np.testing.assert_array_equal(sample.instances > 0, mask > 0)


def test_wbc_nuclick_watershed_with_70px_cells(tmp_path):
    items, samples, _ = read_all("wbc_nuclick", native.write_wbc(tmp_path / "wbc"), cell_size=70)
    assert {i.split for i in items} == {"train", "test"} and len(items) == 4
    assert all(s.num_objects == 2 for s in samples)  # two touching 70 px cells stay two


def test_crchisto_points_are_zero_based(tmp_path):
    items, samples, _ = read_all("crchisto", native.write_crchisto(tmp_path / "crc", count=1))
    assert samples[0].instances is None
    np.testing.assert_allclose(samples[0].points, [[9, 11], [32.5, 39], [63, 63]])
    assert get_format("crchisto").annotation == "points"


def test_generic_csv_points_and_geojson_polygons(tmp_path):
    root = tmp_path / "til"
    (root / "images").mkdir(parents=True)
    for name in ("a", "b"):
        Image.fromarray(native.rgb()).save(root / "images" / f"{name}.png")
    (root / "annotations.csv").write_text("image,x,y,split\na.png,3,4,train\na.png,10,10,train\nb.png,5,5,test\n")
    items, samples, _ = read_all("generic", root)
    assert [i.split for i in items] == ["train", "test"] and [len(s.points) for s in samples] == [2, 1]
    assert samples[0].meta["exhaustive"] is False

    (root / "annotations.csv").unlink()
    (root / "annotations").mkdir()
    for name in ("a", "b"):
        features = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[5, 5], [20, 5], [20, 20], [5, 20], [5, 5]]]}},
                    {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}]
        (root / "annotations" / f"{name}.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    _, samples, _ = read_all("generic", root)
    assert samples[0].num_objects == 1 and "LineString" in samples[0].warnings[0]


# --- bad input: each a clear error naming the file and the problem ---------------------------------------

def _corrupt_first_image(root):
    next(root.glob("image*.png")).write_bytes(b"not a png")


def _resize_first_image(root):
    Image.fromarray(native.rgb((60, 64))).save(root / "image01.png")


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "image02_mask.txt").unlink(), "image02.png (image without annotation)"),
    (lambda root: (root / "image02.png").unlink(), "image02_mask.txt (annotation without image)"),
    (_corrupt_first_image, "image01.png: unreadable or corrupt image"),
    (_resize_first_image, "annotation is 64x64 but image01.png is 64x60"),
])
def test_bad_cpm_folders_are_named(tmp_path, damage, message):
    root = native.write_cpm15_miccai(tmp_path / "cpm")
    damage(root)
    with pytest.raises(DatasetError) as info:
        read_all("cpm15_miccai", root)
    assert message in str(info.value)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_missing_or_wrong_layout_says_what_was_expected_and_where_to_get_it(tmp_path, name):
    fmt = get_format(name)
    with pytest.raises(DatasetError) as missing:
        fmt.list_items(tmp_path / "absent")
    assert "not found" in str(missing.value) and fmt.layout in str(missing.value) and fmt.source in str(missing.value)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("wrong folder")
    with pytest.raises(DatasetError) as wrong:
        fmt.list_items(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(wrong.value) and "Obtain it from" in str(wrong.value)


def test_mat_without_inst_map_is_named(tmp_path):
    from scipy.io import savemat

    root = native.write_hovernet(tmp_path / "consep", ("Train", "Test"))
    bad = root / "Train" / "Labels" / "train_1.mat"
    savemat(bad, {"type_map": np.zeros((64, 64))})
    with pytest.raises(DatasetError, match="train_1.mat: .mat file has no 'inst_map'"):
        read_all("consep", root)


def test_unparseable_xml_is_named(tmp_path):
    root = native.write_monuseg(tmp_path / "m")
    bad = next((root / "MoNuSeg 2018 Training Data" / "Annotations").glob("*.xml"))
    bad.write_text("<Annotations><Region>")
    with pytest.raises(DatasetError, match=f"{bad.name}: unreadable Aperio XML"):
        read_all("monuseg", root)


def test_non_strict_listing_reports_unpaired_files_instead(tmp_path):
    root = native.write_cpm15_miccai(tmp_path / "cpm", count=3)
    (root / "image03_mask.txt").unlink()
    items, _, skipped = read_all("cpm15_miccai", root, strict=False)
    assert [i.id for i in items] == ["image01", "image02"]
    assert len(skipped) == 1 and "image03.png (image without annotation)" in skipped[0]


# --- the real files -------------------------------------------------------------------------------------

def test_real_cpm15_masks_hold_the_published_nucleus_count(cpm15_masks):
    assert len(cpm15_masks) == 15
    assert sum(len(np.unique(m)) - 1 for m in cpm15_masks.values()) == 2905


def test_real_monuseg_xml_holds_the_published_polygon_count(monuseg_dir):
    from ece_lightning.data.readers.aperio import read_aperio_polygons

    items = get_format("monuseg").list_items(monuseg_dir)
    assert len(items) == 13 and {i.split for i in items} == {"train"}
    counts = [len(read_aperio_polygons(i.annotation)[0]) for i in items]
    assert sum(counts) == 4951


def test_real_cpm15_split_serves_random_crops_and_exhaustive_tiles(cpm15_dir, tmp_path):
    from ece_lightning.data.datamodule import InstanceDataModule

    dm = InstanceDataModule(source="prepared", name="cpm15", format="cpm15_miccai", root=str(cpm15_dir),
                                cache_dir=str(tmp_path), split={"method": "random", "test": 4, "val": 3},
                                sparsity=0.3, crop_size=64, crops_per_epoch=10, eval_tile=128, batch_size=5)
    dm.setup("fit")
    assert [len(dm.datasets[s].images) for s in ("train", "val", "test")] == [8, 3, 4]
    assert sum(dm.annotated_objects[s][1] for s in ("train", "val", "test")) == 2905
    annotated, total = dm.annotated_objects["train"]
    assert abs(annotated / total - 0.3) < 0.02
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (5, 3, 64, 64)
    test = dm.datasets["test"]
    assert len(test) == sum((im.shape[0] // 128) * (im.shape[1] // 128) for im in test.images)
