import math

import pytest
import torch

from ece_lightning.postprocess.detection import decode_grid, detect


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _cell(outputs, row, col, score, offset=(0.5, 0.5), size=(0.0, 0.0), image=0):
    outputs[image, :, row, col] = torch.tensor([_logit(score), _logit(offset[0]), _logit(offset[1]), *size])


def test_decode_places_the_box_in_its_cell():
    outputs = torch.zeros((1, 5, 2, 3))
    _cell(outputs, 1, 2, 0.9, offset=(0.25, 0.75), size=(math.log(2.0), 0.0))
    boxes, scores = decode_grid(outputs, stride=8, anchor=4.0)
    # centre ((2 + 0.25) * 8, (1 + 0.75) * 8) = (18, 14); size 8 x 4.
    torch.testing.assert_close(boxes[0, 1, 2], torch.tensor([14.0, 12.0, 22.0, 16.0]))
    assert scores[0, 1, 2] == pytest.approx(0.9) and boxes.shape == (1, 2, 3, 4)


def test_threshold_and_nms_at_iou_0_2_per_image():
    outputs = torch.full((2, 5, 4, 4), 0.0)
    outputs[:, 0] = -10.0
    _cell(outputs, 1, 1, 0.9, size=(math.log(2.0), math.log(2.0)))      # 16 px box centred (12, 12)
    _cell(outputs, 1, 2, 0.8, offset=(0.1, 0.5), size=(math.log(2.0), math.log(2.0)))  # overlaps it: suppressed
    _cell(outputs, 3, 3, 0.6)                                              # far away: kept
    _cell(outputs, 0, 3, 0.3)                                              # below the threshold
    _cell(outputs, 1, 2, 0.8, offset=(0.1, 0.5), size=(math.log(2.0), math.log(2.0)), image=1)  # alone in image 1
    found = detect(outputs, stride=8, anchor=8.0, score_threshold=0.5, nms_iou=0.2)
    boxes0, scores0 = found.of_image(0)
    assert scores0.tolist() == pytest.approx([0.9, 0.6]) and len(found.of_image(1)[1]) == 1
    torch.testing.assert_close(boxes0[0], torch.tensor([4.0, 4.0, 20.0, 20.0]))


def test_boxes_are_clipped_to_the_image_and_capped_per_image():
    outputs = torch.zeros((1, 5, 2, 2))
    outputs[:, 0] = 5.0
    outputs[:, 3:] = 3.0  # huge boxes
    found = detect(outputs, stride=8, anchor=8.0, nms_iou=1.0, max_detections=3)
    assert len(found.boxes) == 3
    assert found.boxes.min() >= 0 and found.boxes.max() <= 16


@pytest.mark.parametrize("bad", [{"score_threshold": 1.5}, {"nms_iou": -0.1}])
def test_bad_postprocess_values_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        detect(torch.zeros((1, 5, 2, 2)), stride=8, anchor=8.0, **bad)
