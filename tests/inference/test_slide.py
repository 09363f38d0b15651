import numpy as np
import pytest
import tifffile
from PIL import Image

from ece_lightning.bench.slides import disk_centres, render, write_disk_slide
from ece_lightning.inference.slide import SlideError, open_image


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (300, 420, 3), dtype=np.uint8)


@pytest.mark.parametrize("layout", ["tiled", "strips", "png", "grey_tiff"])
def test_regions_equal_the_whole_image(tmp_path, image, layout):
    if layout == "tiled":
        path = tmp_path / "a.tif"
        tifffile.imwrite(path, image, tile=(64, 128), compression="zlib", photometric="rgb")
    elif layout == "strips":
        path = tmp_path / "a.tiff"
        tifffile.imwrite(path, image, rowsperstrip=7, compression="lzw", photometric="rgb")
    elif layout == "grey_tiff":
        path = tmp_path / "a.tif"
        tifffile.imwrite(path, image[..., 0], tile=(64, 64))
    else:
        path = tmp_path / "a.png"
        Image.fromarray(image).save(path)
    expected = np.repeat(image[..., :1], 3, 2) if layout == "grey_tiff" else image
    with open_image(path) as source:
        assert source.shape == (300, 420)
        np.testing.assert_array_equal(source.read_region(0, 0, 300, 420), expected)
        np.testing.assert_array_equal(source.read_region(37, 101, 150, 200), expected[37:187, 101:301])
        # Outside the image reads as white glass.
        region = source.read_region(-10, 400, 30, 40)
        np.testing.assert_array_equal(region[10:, :20], expected[:20, 400:])
        assert (region[:10] == 255).all() and (region[:, 20:] == 255).all()


def test_pyramid_levels_mpp_and_level_choice(tmp_path):
    disks = disk_centres(512, seed=1)
    path = write_disk_slide(tmp_path / "slide.tif", 512, disks, tile=128, levels=3, mpp=0.25)
    with open_image(path) as source:
        assert source.level_shapes == [(512, 512), (256, 256), (128, 128)]
        assert source.mpp == pytest.approx(0.25)
        np.testing.assert_array_equal(source.read_region(0, 0, 512, 512), render(disks, 0, 0, 512, 512))
    with open_image(path, mpp=0.5) as source:
        assert (source.level, source.downsample, source.shape) == (1, 2.0, (256, 256))
        assert source.mpp == pytest.approx(0.5)
        np.testing.assert_array_equal(source.read_region(0, 0, 256, 256), render(disks, 0, 0, 256, 256, scale=2.0))
    with open_image(path, mpp=0.9) as source:
        assert source.level == 2
    with open_image(path, level=1, input_mpp=1.0) as source:
        assert source.mpp == pytest.approx(2.0)
    with open_image(path) as source:
        thumbnail, scale = source.thumbnail(max_side=128)
        assert thumbnail.shape == (128, 128, 3) and scale == pytest.approx(4.0)


@pytest.mark.parametrize("make,kwargs,message", [
    (None, {}, "no such file"),
    ("x.jp2", {}, "unsupported file type '.jp2'"),
    ("slide.tif", {"level": 5}, "level=5 does not exist; the file has levels 0..1"),
    ("plain.tif", {"mpp": 0.5}, "records no microns per pixel"),
    ("slide.tif", {"level": 0, "mpp": 0.5}, "not both"),
    ("broken.tif", {}, "not a readable TIFF"),
])
def test_bad_input_is_named(tmp_path, make, kwargs, message):
    path = tmp_path / (make or "missing.tif")
    if make == "slide.tif":
        write_disk_slide(path, 256, disk_centres(256), tile=128, levels=2)
    elif make == "plain.tif":
        tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint8))
    elif make in ("broken.tif", "x.jp2"):
        path.write_bytes(b"not an image")
    with pytest.raises(SlideError, match=message) as info:
        open_image(path, **kwargs)
    assert str(path) in str(info.value) or "mpp" in message
