import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.color import rgb2gray, rgb2hed
from skimage.filters import threshold_otsu

from ece_lightning.data.sources import SyntheticSource
from ece_lightning.data.synthetic import SyntheticConfig, generate_split, generate_tile
from ece_lightning.metrics.core import dice


def test_tile_is_deterministic_per_seed_and_index():
    image_a, inst_a = generate_tile(7, 3)
    image_b, inst_b = generate_tile(7, 3)
    np.testing.assert_array_equal(image_a, image_b)
    np.testing.assert_array_equal(inst_a, inst_b)
    assert not np.array_equal(generate_tile(8, 3)[0], image_a)
    assert not np.array_equal(generate_tile(7, 4)[0], image_a)


def test_tile_types_and_sequential_labels():
    image, instances = generate_tile(0, 0, SyntheticConfig(image_size=96))
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    assert instances.shape == (96, 96) and instances.dtype == np.int32
    labels = np.unique(instances)
    np.testing.assert_array_equal(labels, np.arange(labels.max() + 1))
    assert labels.max() >= 5


def test_every_instance_is_one_connected_piece():
    for index in range(8):
        _, instances = generate_tile(1, index)
        for label in range(1, instances.max() + 1):
            _, pieces = ndi.label(instances == label)
            assert pieces == 1, f"tile {index} instance {label} has {pieces} pieces"


def test_tiles_hold_touching_nuclei():
    touching = 0
    for index in range(8):
        _, instances = generate_tile(0, index)
        # Two different labels side by side (4-neighbours) mean touching nuclei.
        a, b = instances[:, :-1], instances[:, 1:]
        touching += np.count_nonzero((a > 0) & (b > 0) & (a != b))
    assert touching > 50


def test_a_global_threshold_does_not_solve_it():
    images, instances = generate_split(0, 0, 24)
    grey = [dice(t > 0, rgb2gray(im) < threshold_otsu(rgb2gray(im))) for im, t in zip(images, instances)]
    hema = [dice(t > 0, rgb2hed(im)[..., 0] > threshold_otsu(rgb2hed(im)[..., 0]))
            for im, t in zip(images, instances)]
    assert np.mean(grey) < 0.6, np.mean(grey)
    assert np.mean(hema) < 0.75, np.mean(hema)


def test_splits_are_disjoint_and_sized():
    splits = SyntheticSource(seed=0, num_train=4, num_val=2, num_test=3, image_size=64).load()
    assert [len(splits[s]) for s in ("train", "val", "test")] == [4, 2, 3]
    all_images = np.concatenate([splits[s].images for s in ("train", "val", "test")])
    flat = all_images.reshape(len(all_images), -1)
    assert len({row.tobytes() for row in flat}) == len(flat)


@pytest.mark.parametrize("bad", [{"image_size": 16}, {"radius": (5.0, 2.0)}, {"pale_fraction": 1.5}])
def test_bad_generator_settings_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SyntheticConfig(**bad)


def test_bad_split_size_is_named():
    with pytest.raises(ValueError, match="num_val=0 must be an integer >= 1"):
        SyntheticSource(num_val=0)
