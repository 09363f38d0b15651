import numpy as np
import pytest
from scipy import ndimage as ndi

from ece_lightning.bench.metrics import per_instance_aji
from ece_lightning.metrics.core import (
    aji,
    aji_counts,
    dice,
    dice_counts,
    f1_from_counts,
    matching_counts,
    overlaps,
)


def _map(*boxes, shape=(8, 8)):
    """Instance map with box i (y0, y1, x0, x1) labelled i + 1."""
    out = np.zeros(shape, dtype=np.int32)
    for label, (y0, y1, x0, x1) in enumerate(boxes, start=1):
        out[y0:y1, x0:x1] = label
    return out


EMPTY = _map()
ONE = _map((1, 3, 1, 5))                       # 2x4 = 8 pixels
HALVES = _map((1, 3, 1, 3), (1, 3, 3, 5))      # the same pixels as two objects of 4
PAIR = _map((4, 6, 1, 3), (4, 6, 3, 5))        # two touching objects of 4 pixels
PAIR_MERGED = _map((4, 6, 1, 5))               # ...predicted as one object of 8


def test_both_empty_scores_one():
    assert dice(EMPTY, EMPTY) == 1.0
    assert aji(EMPTY, EMPTY) == 1.0
    assert matching_counts(EMPTY, EMPTY) == (0, 0, 0)
    assert f1_from_counts(0, 0, 0) == 1.0


def test_empty_prediction_scores_zero_without_crashing():
    assert dice_counts(ONE, EMPTY) == (0, 8)
    assert aji_counts(ONE, EMPTY) == (0, 8)
    assert aji(ONE, EMPTY) == 0.0
    assert matching_counts(ONE, EMPTY) == (0, 0, 1)


def test_empty_ground_truth_scores_zero():
    assert dice(EMPTY, ONE) == 0.0
    assert aji_counts(EMPTY, ONE) == (0, 8)
    assert matching_counts(EMPTY, ONE) == (0, 1, 0)


def test_perfect_prediction_with_other_label_numbers():
    relabelled = np.where(ONE > 0, 17, 0)
    assert dice(ONE, relabelled) == 1.0 and aji(ONE, relabelled) == 1.0
    assert matching_counts(ONE, relabelled) == (1, 0, 0)


def test_one_object_split_in_two():
    # Both halves have IoU 4/8 with the object; the lower label is paired: C = 4, U = 8 + 4 unused.
    assert dice(ONE, HALVES) == 1.0
    assert aji_counts(ONE, HALVES) == (4, 12)
    assert matching_counts(ONE, HALVES, 0.5) == (1, 1, 0)
    assert matching_counts(ONE, HALVES, 0.6) == (0, 2, 1)


def test_two_objects_merged_into_one():
    # Each object pairs with the merged prediction: C = 4 + 4, U = 8 + 8 (it serves both).
    assert dice(PAIR, PAIR_MERGED) == 1.0
    assert aji_counts(PAIR, PAIR_MERGED) == (8, 16)
    assert aji(PAIR, PAIR_MERGED) == 0.5
    assert matching_counts(PAIR, PAIR_MERGED, 0.5) == (1, 0, 1)


def test_partial_overlap_and_false_positive():
    target = _map((0, 4, 0, 4))                   # 16 px
    pred = _map((0, 4, 2, 6), (6, 8, 6, 8))       # 16 px overlapping 8, plus a 4 px false positive
    assert dice_counts(target, pred) == (8, 36)
    # pair IoU 8 / 24; the false positive is unused: U = 24 + 4.
    assert aji_counts(target, pred) == (8, 28)
    assert matching_counts(target, pred, 0.3) == (1, 1, 0)
    assert matching_counts(target, pred, 0.5) == (0, 2, 1)


def test_overlap_table():
    table = overlaps(PAIR, PAIR_MERGED)
    assert table.target_index.tolist() == [1, 2] and table.pred_index.tolist() == [1, 1]
    assert table.intersection.tolist() == [4, 4] and table.union.tolist() == [8, 8]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        aji(np.zeros((4, 4)), np.zeros((4, 5)))


def test_threshold_range():
    with pytest.raises(ValueError, match="iou_threshold"):
        matching_counts(ONE, ONE, 0.0)


# The straightforward per-instance AJI (also ece-bench metrics' yardstick) cross-checks the contingency table.
def _perturbed_predictions(target, rng):
    """Realistic errors: shifted, eroded, merged by dilation, missed objects, false positives."""
    shifted = np.roll(target, (2, -1), axis=(0, 1))
    eroded = np.where(ndi.binary_erosion(target > 0, iterations=2), target, 0)
    merged, _ = ndi.label(ndi.binary_dilation(target > 0, iterations=2))
    missing = np.where(np.isin(target, rng.choice(np.unique(target), 20)), 0, target)
    noisy = missing.copy()
    noisy[rng.random(target.shape) < 0.002] = target.max() + 1
    return {"shifted": shifted, "eroded": eroded, "merged": merged, "missing+fp": noisy}


def _crops(cpm15_masks, size=160):
    for name, mask in list(cpm15_masks.items())[:4]:
        yield name, mask[:size, :size]


def test_aji_matches_a_naive_implementation_on_real_cpm15_maps(cpm15_masks):
    rng = np.random.default_rng(0)
    for name, target in _crops(cpm15_masks):
        for kind, pred in _perturbed_predictions(target, rng).items():
            assert aji_counts(target, pred) == per_instance_aji(target, pred), (name, kind)


def test_matching_counts_agree_with_stardist_on_real_cpm15_maps(cpm15_masks):
    stardist_matching = pytest.importorskip("stardist.matching")
    rng = np.random.default_rng(1)
    for name, target in cpm15_masks.items():
        for kind, pred in _perturbed_predictions(target, rng).items():
            for threshold in (0.3, 0.5, 0.7):
                reference = stardist_matching.matching(target, pred, thresh=threshold)
                expected = (int(reference.tp), int(reference.fp), int(reference.fn))
                assert matching_counts(target, pred, threshold) == expected, (name, kind, threshold)


def test_dice_matches_a_direct_count_on_real_maps(cpm15_masks):
    for target in cpm15_masks.values():
        pred = np.roll(target, 3, axis=1) > 0
        g = target > 0
        assert dice(target, pred) == pytest.approx(2 * (g & pred).sum() / (g.sum() + pred.sum()))
