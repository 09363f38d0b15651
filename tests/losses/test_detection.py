import math

import pytest
import torch

from ece_lightning.callbacks import scheduled_losses
from ece_lightning.losses import DetectionLoss, ExclusiveCrossEntropy
from ece_lightning.losses.detection import encode_targets


def test_a_box_is_assigned_to_the_cell_of_its_centre():
    # Stride 8: a box 10..22 x 4..12 has its centre (16, 8) in cell (row 1, column 2).
    boxes, image = torch.tensor([[10.0, 4.0, 22.0, 12.0]]), torch.tensor([1])
    targets = encode_targets(boxes, image, batch_size=2, grid=(4, 4), stride=8, anchor=6.0)
    assert targets.assigned.sum() == 1 and targets.assigned[1, 1, 2]
    assert targets.objectness[1, 1, 2] == 1.0 and targets.objectness.sum() == 1.0
    torch.testing.assert_close(targets.box[1, :, 1, 2], torch.tensor([0.0, 0.0, math.log(2.0), math.log(8 / 6)]))
    assert targets.unassigned == 0


def test_two_centres_in_one_cell_keep_the_larger_box():
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 5.0, 7.0], [0.0, 0.0, 4.0, 4.0]])
    targets = encode_targets(boxes, torch.zeros(3, dtype=torch.long), 1, (2, 2), stride=8, anchor=4.0)
    assert targets.assigned.sum() == 1 and targets.unassigned == 2
    torch.testing.assert_close(targets.box[0, 2:, 0, 0], torch.tensor([0.0, math.log(1.5)]))


def test_no_boxes_gives_all_background_targets():
    targets = encode_targets(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.long), 2, (3, 3), stride=4, anchor=8.0)
    assert not targets.assigned.any() and targets.objectness.sum() == 0 and targets.unassigned == 0


def _outputs_for(boxes, grid=(4, 4), stride=8, anchor=8.0, confident=True):
    """Outputs that predict exactly ``boxes`` (image 0) with objectness +-8."""
    targets = encode_targets(boxes, torch.zeros(len(boxes), dtype=torch.long), 1, grid, stride, anchor)
    out = torch.full((1, 5, *grid), 0.0)
    out[:, 0] = torch.where(targets.assigned, 8.0, -8.0) if confident else 0.0
    offsets = targets.box[:, :2].clamp(1e-4, 1 - 1e-4)
    out[:, 1:3] = torch.log(offsets / (1 - offsets))
    out[:, 3:] = targets.box[:, 2:]
    return out


@pytest.mark.parametrize("normalize", ["cells", "groups"])
def test_a_perfect_prediction_costs_almost_nothing_and_a_wrong_one_a_lot(normalize):
    boxes = torch.tensor([[2.0, 2.0, 12.0, 10.0], [17.0, 20.0, 29.0, 30.0]])
    loss = DetectionLoss({"name": "ce"}, stride=8, anchor=8.0, normalize=normalize)
    good, parts = loss(_outputs_for(boxes), boxes, torch.zeros(2, dtype=torch.long))
    assert good < 0.01 and parts["box"] < 1e-6
    bad, _ = loss(_outputs_for(boxes, confident=False), boxes, torch.zeros(2, dtype=torch.long))
    assert bad > 1.0


def test_groups_normalisation_weighs_each_group_by_its_mean():
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0]])
    outputs = torch.zeros((1, 5, 2, 2))  # every cell p = 0.5: BCE log 2 for all
    loss = DetectionLoss({"name": "ce"}, stride=8, anchor=8.0, lambda_objects=1.0, lambda_background=10.0,
                         lambda_box=0.0, normalize="groups")
    total, _ = loss(outputs, boxes, torch.tensor([0]))
    torch.testing.assert_close(total, torch.tensor(11 * math.log(2)))
    cells = DetectionLoss({"name": "ce"}, stride=8, anchor=8.0, lambda_box=0.0, normalize="cells")
    torch.testing.assert_close(cells(outputs, boxes, torch.tensor([0]))[0], torch.tensor((1 + 3 * 10) / 4 * math.log(2)))


def test_ece_objectness_drops_confident_unannotated_cells_and_is_driven_by_the_callback():
    loss = DetectionLoss({"name": "ece", "annotation_margin": 0}, stride=8, anchor=8.0, lambda_box=0.0)
    assert isinstance(loss.objectness, ExclusiveCrossEntropy) and scheduled_losses(loss) == [loss.objectness]
    outputs = torch.zeros((1, 5, 2, 2))
    outputs[0, 0, 1, 1] = 6.0  # an unannotated cell the model believes is an object
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0]])
    warm_up, _ = loss(outputs, boxes, torch.tensor([0]))
    loss.objectness.set_progress(10, 10)  # after the warm-up: p_obj > 0.5 is excluded
    late, _ = loss(outputs, boxes, torch.tensor([0]))
    ce, _ = DetectionLoss({"name": "ce"}, stride=8, anchor=8.0, lambda_box=0.0)(outputs, boxes, torch.tensor([0]))
    # CE keeps the confident cell as a full negative, the warm-up at weight 0.1, the late schedule drops it.
    assert late < warm_up < ce


def test_gradients_are_finite_on_a_batch_without_boxes():
    outputs = torch.randn((2, 5, 4, 4), requires_grad=True)
    total, parts = DetectionLoss({"name": "ece"}, stride=4, anchor=8.0)(outputs, torch.zeros((0, 4)),
                                                                      torch.zeros(0, dtype=torch.long))
    total.backward()
    assert parts["box"] == 0 and torch.isfinite(outputs.grad).all() and outputs.grad[:, 0].abs().sum() > 0


@pytest.mark.parametrize("bad, name", [({"lambda_background": -1}, "lambda_background"),
                                       ({"normalize": "images"}, "normalize")])
def test_bad_weights_are_named(bad, name):
    with pytest.raises(ValueError, match=name):
        DetectionLoss({"name": "ce"}, stride=8, anchor=8.0, **bad)


def test_outputs_must_be_the_five_channel_grid():
    with pytest.raises(ValueError, match=r"\(B, 5, Gh, Gw\)"):
        DetectionLoss({"name": "ce"}, stride=8, anchor=8.0)(torch.zeros(1, 2, 4, 4), torch.zeros((0, 4)),
                                                            torch.zeros(0, dtype=torch.long))
