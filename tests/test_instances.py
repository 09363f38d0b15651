"""relabel_sequential: the lookup-table path and the sorting fallback give the same renumbering."""

import numpy as np
import pytest

from ece_lightning.instances import relabel_sequential


def _by_sorting(instances):
    labels, inverse = np.unique(instances, return_inverse=True)
    if labels.size and labels[0] != 0:
        inverse = inverse + 1
    return inverse.reshape(instances.shape).astype(np.int32)


@pytest.mark.parametrize("case", ["sparse labels with background", "no background", "huge labels", "negative",
                                  "uint16", "all background"])
def test_relabel_matches_renumbering_by_sorting(case):
    rng = np.random.default_rng(0)
    instances = rng.choice([0, 3, 7, 8, 150, 4000], size=(40, 50)).astype(np.int32)
    if case == "no background":
        instances[instances == 0] = 5
    elif case == "huge labels":
        instances = instances.astype(np.int64) * 10**9
    elif case == "negative":
        instances[0, 0] = -2
    elif case == "uint16":
        instances = instances.astype(np.uint16)
    elif case == "all background":
        instances[:] = 0
    relabelled = relabel_sequential(instances)
    assert relabelled.dtype == np.int32 and relabelled.shape == instances.shape
    np.testing.assert_array_equal(relabelled, _by_sorting(instances))
    if case == "sparse labels with background":
        assert relabelled.max() == 5 and set(np.unique(relabelled)) == set(range(6))


# --- component_peaks: the watershed markers, checked against scikit-image's peak_local_max ---------------------

def _skimage_peaks(distance, components, min_distance):
    from skimage.feature import peak_local_max

    return peak_local_max(distance, min_distance=min_distance, labels=components, exclude_border=False)


def _random_masks():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    for _ in range(60):
        noise = rng.random((48, 64)) < rng.uniform(0.35, 0.8)
        yield ndi.binary_opening(noise, iterations=int(rng.integers(0, 3)))
    yield np.ones((30, 30), bool)  # no background: the image minimum is not 0
    lines = np.zeros((20, 24), bool)
    lines[5, :] = True  # flat components: every pixel is a maximum
    lines[10:12, 3:15] = True
    lines[15, 2] = True
    yield lines
    plateau = np.zeros((40, 40), bool)
    plateau[5:35, 10:20] = True  # a long ridge of equal distances
    plateau[5:8, 25:38] = True
    yield plateau


@pytest.mark.parametrize("min_distance", [1, 2, 4, 6, 12])
def test_component_peaks_equal_skimage_in_order(min_distance):
    from scipy import ndimage as ndi

    from ece_lightning.instances import component_peaks

    compared = 0
    for mask in _random_masks():
        distance = ndi.distance_transform_edt(mask)
        components, _ = ndi.label(mask)
        expected = _skimage_peaks(distance, components, min_distance)
        found = component_peaks(distance, components, min_distance)
        assert found.dtype == np.int64 and found.shape == expected.shape
        np.testing.assert_array_equal(found, expected)
        compared += len(found)
    assert compared > 100  # the masks really produce peaks to compare


def test_component_peaks_equal_skimage_on_cpm15(cpm15_masks):
    from scipy import ndimage as ndi

    from ece_lightning.instances import component_peaks

    for name, instances in list(cpm15_masks.items())[:4]:
        foreground = ndi.binary_opening(instances > 0)  # merged neighbours, like a prediction
        distance = ndi.distance_transform_edt(foreground)
        components, count = ndi.label(foreground)
        found = component_peaks(distance, components, 6)
        np.testing.assert_array_equal(found, _skimage_peaks(distance, components, 6), err_msg=name)
        assert len(found) >= count // 2


def test_component_peaks_float32_map_and_errors():
    from ece_lightning.instances import component_peaks

    image = np.zeros((9, 9), np.float32)
    image[2, 2], image[6, 6] = 3.0, 2.0
    labels = (image > 0).astype(np.int32)
    labels[6, 6] = 2
    np.testing.assert_array_equal(component_peaks(image, labels, 2), _skimage_peaks(image, labels, 2))
    assert component_peaks(image, np.zeros_like(labels), 2).shape == (0, 2)
    with pytest.raises(ValueError, match="min_distance=0"):
        component_peaks(image, labels, 0)
    with pytest.raises(ValueError, match="one shape"):
        component_peaks(image, labels[:5], 2)


@pytest.mark.parametrize("min_distance", [2, 6])
def test_component_peaks_equal_skimage_with_thousands_of_candidates_in_one_component(min_distance):
    """Lattices and bands: one component with more candidates than the dense spacing matrix is used for
    (the KD-tree path) still gives skimage's peaks in order."""
    from scipy import ndimage as ndi

    from ece_lightning import instances
    from ece_lightning.instances import component_peaks

    lattice = np.zeros((160, 160), bool)
    lattice[:, ::3] = True
    lattice[::2, :] = True
    y, x = np.mgrid[:512, :512]
    bands = np.sin(x / 9.0 + y / 23.0) > 0.3
    for mask in (lattice, bands):
        distance = ndi.distance_transform_edt(mask)
        components, _ = ndi.label(mask)
        found = component_peaks(distance, components, min_distance)
        np.testing.assert_array_equal(found, _skimage_peaks(distance, components, min_distance))
    assert len(component_peaks(*[ndi.distance_transform_edt(lattice), ndi.label(lattice)[0]], 2)) > \
        instances._DENSE_SPACING_LIMIT
