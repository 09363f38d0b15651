import numpy as np
import pytest

from ece_lightning.data.sparsify import kept_instance_count, sparsify_instances
from ece_lightning.data.synthetic import generate_tile


@pytest.fixture(scope="module")
def instances():
    return generate_tile(0, 0, )[1]


def test_deterministic_per_seed_and_image(instances):
    a = sparsify_instances(instances, 0.3, seed=1, image_id=5)
    np.testing.assert_array_equal(a, sparsify_instances(instances, 0.3, seed=1, image_id=5))
    assert not np.array_equal(a, sparsify_instances(instances, 0.3, seed=2, image_id=5))
    assert not np.array_equal(a, sparsify_instances(instances, 0.3, seed=1, image_id=6))


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.6, 0.9])
def test_whole_instances_are_kept_or_removed(instances, sparsity):
    sparse = sparsify_instances(instances, sparsity, seed=0, image_id=0)
    labels = np.unique(instances[instances > 0])
    kept = np.unique(sparse[sparse > 0])
    assert len(kept) == kept_instance_count(len(labels), sparsity)
    for label in labels:
        region = instances == label
        if label in kept:
            assert np.all(sparse[region] == label)
        else:
            assert np.all(sparse[region] == 0)
    assert np.all(sparse[instances == 0] == 0)


def test_kept_sets_are_nested(instances):
    low = set(np.unique(sparsify_instances(instances, 0.3, 0, 0))) - {0}
    high = set(np.unique(sparsify_instances(instances, 0.6, 0, 0))) - {0}
    assert low < high


def test_full_sparsity_is_identity(instances):
    np.testing.assert_array_equal(sparsify_instances(instances, 1.0, 0, 0), instances)


def test_empty_map_stays_empty():
    empty = np.zeros((8, 8), dtype=np.int32)
    np.testing.assert_array_equal(sparsify_instances(empty, 0.5, 0, 0), empty)


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5])
def test_out_of_range_sparsity_is_rejected(instances, bad):
    with pytest.raises(ValueError, match=r"sparsity=.*\(0, 1\]"):
        sparsify_instances(instances, bad, 0, 0)


def test_kept_count_rounds_half_up():
    assert kept_instance_count(10, 0.3) == 3
    assert kept_instance_count(5, 0.3) == 2  # 1.5 -> 2
    assert kept_instance_count(3, 0.1) == 0
