import numpy as np
import pytest
import torch

from ece_lightning.data.targets import (
    boxes_from_instances,
    instance_boxes,
    power_of_two_below,
    touching_borders,
    watershed_split,
)

from .native import disc_instances, touching_foreground


def test_watershed_splits_touching_cells_one_cell_size_apart():
    mask, cells = touching_foreground()
    instances = watershed_split(mask, cell_size=25)
    assert len(np.unique(instances)) - 1 == cells
    np.testing.assert_array_equal(instances > 0, mask > 0)  # every foreground pixel labelled


def test_watershed_keeps_closer_maxima_as_one_cell():
    mask, _ = touching_foreground()  # centres 25 px apart: one cell of 40 px
    assert len(np.unique(watershed_split(mask, cell_size=40))) - 1 == 2


def test_watershed_keeps_border_objects_and_tiny_components():
    mask = np.zeros((40, 40), np.uint8)
    mask[:6, 10:16] = 1  # cut by the top border
    mask[30, 30] = 1  # a single pixel
    instances = watershed_split(mask, cell_size=25)
    assert len(np.unique(instances)) - 1 == 2 and np.all((instances > 0) == (mask > 0))


def test_watershed_of_an_empty_mask_is_empty():
    assert not watershed_split(np.zeros((8, 8)), 25).any()
    with pytest.raises(ValueError, match="cell_size=0"):
        watershed_split(np.ones((8, 8)), 0)


def test_boxes_enclose_each_instance_exactly():
    instances = disc_instances(centres=((16, 16), (40, 44)), radius=5)
    instances[instances == 2] = 7  # ids need not be consecutive
    boxes, ids = boxes_from_instances(instances)
    assert ids.tolist() == [1, 7]
    np.testing.assert_allclose(boxes, [[16.5, 16.5, 11, 11], [44.5, 40.5, 11, 11]])
    empty_boxes, empty_ids = boxes_from_instances(np.zeros((4, 4), np.int32))
    assert empty_boxes.shape == (0, 4) and empty_ids.shape == (0,)


@pytest.mark.parametrize("size, expected", [(1000, 512), (512, 512), (513, 512), (439, 256), (1, 1)])
def test_power_of_two_below(size, expected):
    assert power_of_two_below(size) == expected


def test_instance_boxes_match_the_numpy_boxes_on_a_batch():
    maps = np.zeros((3, 20, 24), np.int32)
    maps[0, 2:5, 3:9] = 4
    maps[0, 10:18, 20:24] = 9   # touches the right border
    maps[2, 0:1, 0:1] = 1       # a single pixel in the corner
    maps[2, 5:12, 5:7] = 70     # ids need not be sequential
    maps[2, 6, 10] = 70         # an instance of two components spans both
    boxes, image = instance_boxes(torch.from_numpy(maps))
    expected, rows = [], []
    for index, inst in enumerate(maps):
        centred, _ = boxes_from_instances(inst)
        for cx, cy, w, h in centred:
            expected.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            rows.append(index)
    torch.testing.assert_close(boxes, torch.tensor(expected, dtype=torch.float32))
    assert image.tolist() == rows == [0, 0, 2, 2]
    assert boxes[-1].tolist() == [5.0, 5.0, 11.0, 12.0]


def test_instance_boxes_of_empty_maps():
    boxes, image = instance_boxes(torch.zeros((2, 8, 8), dtype=torch.int32))
    assert boxes.shape == (0, 4) and image.shape == (0,)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        instance_boxes(torch.zeros((8, 8), dtype=torch.int32))


def test_touching_borders_leave_a_one_pixel_gap_on_the_lower_id_side():
    instances = torch.zeros(2, 7, 9, dtype=torch.int32)
    instances[0, 1:5, 1:4], instances[0, 1:5, 4:7] = 3, 5  # side by side
    instances[1, 1:3, 1:3], instances[1, 3:5, 3:5] = 2, 1  # corner to corner (8-neighbours)
    instances[1, 5:7, 7:9] = 4  # touches nothing
    borders = touching_borders(instances)
    expected = torch.zeros_like(borders)
    expected[0, 1:5, 3] = True  # the last column of instance 3, next to instance 5
    expected[1, 3, 3] = True  # instance 1's corner pixel, diagonal to instance 2's
    assert torch.equal(borders, expected)
    assert not touching_borders(instances[1:, 5:, 5:]).any()  # instance 4 alone
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        touching_borders(instances[0])
