"""The detection module on point labels: nominal label boxes, objectness-only training with fixed boxes."""

import pytest
import torch

from ece_lightning.data.points import point_markers
from ece_lightning.errors import ConfigError
from ece_lightning.losses.detection import DetectionLoss
from ece_lightning.modules import DetectionModule


def _module(**options):
    return DetectionModule(model={"name": "yollo", "base_channels": 4, "depth": 2, "anchor": 8.0},
                           loss={"name": "ce"}, metrics={"point_radius": 4.0}, **options)


def _batch(sides, labelled=(True, False)):
    maps = torch.zeros(2, 32, 32, dtype=torch.int32)
    maps[0] = torch.from_numpy(point_markers([[10, 12], [30, 1]], (32, 32)))
    maps[1, 4:10, 20:30] = 1  # a mask: its own box
    return {"instances": maps, "point_labels": torch.tensor(labelled), "point_box": torch.tensor(sides)}


def test_points_get_nominal_boxes_and_masks_keep_theirs():
    boxes, image_index = _module().label_boxes(_batch([6.0, 0.0])["instances"], _batch([6.0, 0.0]))
    torch.testing.assert_close(boxes, torch.tensor([[7.5, 9.5, 13.5, 15.5], [27.5, 0.0, 32.0, 4.5],
                                                    [20.0, 4.0, 30.0, 10.0]]))
    assert image_index.tolist() == [0, 0, 1]


def test_points_of_unknown_size_need_a_fixed_box_size_and_then_get_it():
    batch = _batch([0.0, 0.0])
    with pytest.raises(ConfigError, match="task.fixed_box_size"):
        _module().label_boxes(batch["instances"], batch)
    boxes, _ = _module(fixed_box_size=4.0).label_boxes(batch["instances"], batch)
    torch.testing.assert_close(boxes[0], torch.tensor([8.5, 10.5, 12.5, 14.5]))
    with pytest.raises(ConfigError, match="fixed_box_size=-1"):
        _module(fixed_box_size=-1)


def test_a_fixed_box_size_regresses_centres_only_and_detects_squares_of_that_side():
    criterion = DetectionLoss({"name": "ce"}, stride=4, anchor=8.0, regress_size=False)
    outputs = torch.randn(1, 5, 8, 8, requires_grad=True)
    loss, _ = criterion(outputs, torch.tensor([[2.0, 2.0, 14.0, 12.0]]), torch.tensor([0]))
    loss.backward()
    assert (outputs.grad[:, 3:] == 0).all() and outputs.grad[:, 1:3].abs().sum() > 0
    module = _module(fixed_box_size=6.0)
    module.postprocess_cfg.update(score_threshold=0.0, nms_iou=1.0)
    detections = module.detect(torch.randn(1, 5, 8, 8) * 3, (32, 32))
    sides = detections.boxes[:, 2:] - detections.boxes[:, :2]
    inner = (detections.boxes[:, :2] > 0).all(dim=1) & (detections.boxes[:, 2:] < 32).all(dim=1)
    assert inner.sum() > 10 and torch.allclose(sides[inner], torch.full_like(sides[inner], 6.0))
