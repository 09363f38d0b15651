import numpy as np

from ece_lightning.drawing import OUTLINE_COLOUR, draw_outlines

from .data.native import disc_instances


def test_outlines_paint_only_instance_borders():
    instances = disc_instances(centres=((16, 16),), radius=6)
    image = np.full((64, 64, 3), 128, np.uint8)
    out = draw_outlines(image, instances)
    painted = np.all(out == OUTLINE_COLOUR, axis=-1)
    assert painted.any() and np.all(instances[painted] > 0)  # inner boundary: inside the object
    assert not painted[16, 16] and not painted[0, 0]  # centre and background untouched
    assert np.array_equal(image, np.full((64, 64, 3), 128, np.uint8))  # the input is not modified


def test_points_become_crosses_clipped_at_the_border():
    out = draw_outlines(np.zeros((10, 10, 3), np.uint8), points=np.array([[5.0, 5.0], [0.0, 9.0]]))
    painted = np.all(out == OUTLINE_COLOUR, axis=-1)
    assert painted[5, 3:8].all() and painted[3:8, 5].all() and painted[9, 0] and painted.sum() == 9 + 5
