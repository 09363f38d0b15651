"""relabel_sequential: the lookup-table path and the sorting fallback give the same renumbering."""

import numpy as np
import pytest

from ece_lightning.data.instances import relabel_sequential


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
