import numpy as np
import pytest

from ece_lightning.postprocess.segmentation import foreground_to_instances


def _two_touching_discs():
    yy, xx = np.mgrid[:40, :60]
    return ((yy - 20) ** 2 + (xx - 18) ** 2 <= 81) | ((yy - 20) ** 2 + (xx - 34) ** 2 <= 81)


def test_components_keep_touching_discs_as_one_object():
    instances = foreground_to_instances(_two_touching_discs(), method="components")
    assert instances.max() == 1


def test_watershed_splits_touching_discs_and_labels_every_pixel():
    mask = _two_touching_discs()
    instances = foreground_to_instances(mask, method="watershed", min_distance=5)
    assert instances.max() == 2
    np.testing.assert_array_equal(instances > 0, mask)


def test_min_size_drops_specks_and_relabels_sequentially():
    mask = np.zeros((20, 20), bool)
    mask[2:8, 2:8] = True
    mask[15, 15] = True
    instances = foreground_to_instances(mask, min_size=4)
    assert instances.max() == 1 and instances[15, 15] == 0


def test_empty_foreground_gives_no_objects():
    for method in ("components", "watershed"):
        assert foreground_to_instances(np.zeros((8, 8)), method=method).max() == 0


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="'otsu'"):
        foreground_to_instances(np.zeros((4, 4)), method="otsu")
