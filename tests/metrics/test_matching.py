"""Detection matching against hand-computed cases."""

import pytest
import torch

from ece_lightning.metrics import BoxF1, PointF1, box_matching_counts, detection_scores, point_matching_counts

LABELS = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])


def test_exact_and_shifted_boxes():
    shifted = torch.tensor([[2.0, 0.0, 12.0, 10.0]])  # IoU 80 / 120 = 0.667
    assert box_matching_counts(LABELS[:1], shifted) == (1, 0, 0)
    far = torch.tensor([[5.0, 0.0, 15.0, 10.0]])  # IoU 50 / 150 = 0.333
    assert box_matching_counts(LABELS[:1], far) == (0, 1, 1)


def test_a_duplicate_detection_counts_once():
    preds = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    assert box_matching_counts(LABELS, preds) == (2, 1, 0)


def test_a_label_box_is_matched_once_and_the_assignment_maximises_pairs():
    # Prediction A overlaps labels L1 (IoU 0.82) and L2 (IoU 0.67); prediction B only L1 (IoU 0.54).
    labels = torch.tensor([[0.0, 0.0, 10.0, 10.0], [3.0, 0.0, 13.0, 10.0]])
    preds = torch.tensor([[1.0, 0.0, 11.0, 10.0], [-3.0, 0.0, 7.0, 10.0]])
    assert box_matching_counts(labels, preds) == (2, 0, 0)  # greedy A->L1 would leave B unmatched


def test_no_predictions_and_no_labels():
    empty = torch.zeros((0, 4))
    assert box_matching_counts(LABELS, empty) == (0, 0, 2)
    assert box_matching_counts(empty, LABELS) == (0, 2, 0)
    assert box_matching_counts(empty, empty) == (0, 0, 0)
    assert detection_scores(0, 0, 0) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert detection_scores(0, 0, 2) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert detection_scores(3, 1, 2) == pytest.approx({"precision": 0.75, "recall": 0.6, "f1": 6 / 9})


def test_points_pair_within_the_radius():
    labels = torch.tensor([[10.0, 10.0], [30.0, 10.0]])
    preds = torch.tensor([[12.0, 11.0], [11.0, 9.0], [30.0, 16.0]])  # a duplicate; one 6 px off
    assert point_matching_counts(labels, preds, radius=5) == (1, 2, 1)
    assert point_matching_counts(labels, preds, radius=6) == (2, 1, 0)
    with pytest.raises(ValueError, match="radius"):
        point_matching_counts(labels, preds, radius=0)


def test_box_f1_sums_counts_over_images():
    metric = BoxF1(iou_threshold=0.5)
    metric.update([LABELS, torch.zeros((0, 4))], [LABELS, LABELS[:1]])          # 2 TP; 1 FN
    metric.update([torch.tensor([[50.0, 50.0, 60.0, 60.0]])], [torch.zeros((0, 4))])  # 1 FP
    result = {k: float(v) for k, v in metric.compute().items()}
    assert result == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "exclusive_recall": 2 / 3,
                                    "count_ratio": 1.0})


def test_point_f1_uses_box_centres_and_its_own_names():
    metric = PointF1(radius=3)
    metric.update([LABELS + 2.0], [LABELS])  # centres 2.8 px apart
    assert {k: float(v) for k, v in metric.compute().items()}["point_f1"] == 1.0


def test_mismatched_batches_are_refused():
    with pytest.raises(ValueError, match="2 predicted box sets but 1 label box sets"):
        BoxF1().update([LABELS, LABELS], [LABELS])
