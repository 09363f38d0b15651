"""Point labels: one-pixel markers in instance maps, nominal boxes around them, and points through the
datamodule (augmentation, whole-object sparsification, splits)."""

import albumentations as A
import numpy as np
import pytest
import torch

from ece_lightning.data.datamodule import InstanceDataModule
from ece_lightning.data.points import (
    box_side_pixels,
    check_point_labels,
    instance_centroids,
    markers_from_instances,
    nominal_boxes,
    point_markers,
)
from ece_lightning.data.sparsify import sparsify_instances
from ece_lightning.data.targets import instance_boxes
from ece_lightning.data.transforms import RandomQuarterTurn, apply_transform

from .native import disc_instances


def test_point_markers_are_one_pixel_each_in_order_and_drop_points_outside():
    markers = point_markers(np.array([[3.4, 5.6], [10, 2], [-1, 4], [3.0, 6.2], [7, 8]]), (12, 16))
    assert markers[6, 3] == 1 and markers[2, 10] == 2 and markers[8, 7] == 3  # (x, y) -> [row, col], rounded
    assert np.count_nonzero(markers) == 3  # the point outside is dropped; two in one pixel keep the first
    assert markers.dtype == np.int32 and markers.shape == (12, 16)
    assert not point_markers(np.zeros((0, 2)), (4, 4)).any()


def test_markers_from_instances_sit_at_the_mask_centroids():
    instances = disc_instances()  # discs at (row, col) (16, 16), (40, 44), (50, 14)
    np.testing.assert_allclose(instance_centroids(instances), [[16, 16], [44, 40], [14, 50]], atol=1e-6)
    markers = markers_from_instances(instances)
    assert [markers[16, 16], markers[40, 44], markers[50, 14]] == [1, 2, 3] and np.count_nonzero(markers) == 3


def test_nominal_boxes_have_the_cell_size_and_are_clipped_at_borders():
    markers = point_markers(np.array([[20, 30], [1, 2], [62, 47]]), (48, 64))
    marker_boxes, image_index = instance_boxes(torch.from_numpy(markers)[None])
    boxes = nominal_boxes(marker_boxes, torch.tensor([10.0, 10.0, 6.0]), 48, 64)
    # Centres at pixel centres (x + 0.5): a full 10-px box, one cut at the top-left, one at the bottom-right.
    torch.testing.assert_close(boxes, torch.tensor([[15.5, 25.5, 25.5, 35.5], [0.0, 0.0, 6.5, 7.5],
                                                    [59.5, 44.5, 64.0, 48.0]]))
    assert image_index.tolist() == [0, 0, 0]


@pytest.mark.parametrize("step", [A.HorizontalFlip(p=1), A.VerticalFlip(p=1), A.Transpose(p=1),
                                  RandomQuarterTurn(p=1)], ids=["hflip", "vflip", "transpose", "rotate90"])
def test_augmentation_moves_markers_and_so_their_nominal_boxes_with_the_image(step):
    instances = disc_instances()
    markers = markers_from_instances(instances)
    image = np.zeros((*instances.shape, 3), np.uint8)
    image[..., 0] = np.where(instances > 0, 200, 0)  # the nuclei are visible in the image
    compose = A.Compose([step], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["box_ids"]),
                        keypoint_params=A.KeypointParams(format="xy", label_fields=["point_ids"]))
    out = apply_transform(compose, image, markers, seed=0)
    moved = apply_transform(compose, image, instances, seed=0)["instances"]
    # Each marker is still one pixel, at the centroid of its (moved) nucleus, inside it in the moved image.
    assert np.count_nonzero(out["instances"]) == 3
    np.testing.assert_array_equal(out["instances"], markers_from_instances(moved))
    rows, cols = np.nonzero(out["instances"])
    assert (out["image"][rows, cols, 0] == 200).all()


def test_points_are_sparsified_as_whole_objects():
    markers = point_markers(np.random.default_rng(0).uniform(0, 64, (20, 2)), (64, 64))
    kept = sparsify_instances(markers, 0.3, seed=1, image_id=0)
    assert np.count_nonzero(kept) == 6 and set(np.unique(kept)) <= set(np.unique(markers))
    assert (kept[kept > 0] == markers[kept > 0]).all()


def test_point_label_settings_are_checked_with_the_key_and_converted_from_microns():
    assert check_point_labels(None) is None
    assert check_point_labels({"box_size": 20}) == {"box_size": 20, "box_size_um": None, "mpp": None}
    for bad, message in (({"box_size": -1}, "box_size=-1"), ({"size": 3}, "point_labels.size: unknown"),
                         ({"box_size": 4, "box_size_um": 2}, "not both"), ("20", "must be null or a mapping")):
        with pytest.raises(ValueError, match=message):
            check_point_labels(bad)
    settings = check_point_labels({"box_size_um": 5.0})
    assert box_side_pixels(settings, 0.25, "a") == 20.0
    assert box_side_pixels({**settings, "mpp": 0.5}, None, "a") == 10.0
    with pytest.raises(ValueError, match="image b records no microns per pixel"):
        box_side_pixels(settings, None, "b")


def _datamodule(**options):
    return InstanceDataModule(num_train=3, num_val=2, num_test=2, image_size=64, batch_size=3, **options)


def test_the_datamodule_serves_train_and_val_as_points_and_keeps_the_test_masks():
    masks, points = _datamodule(), _datamodule(point_labels={"box_size": 12}, sparsity=0.5)
    masks.setup("fit")
    points.setup("fit")
    for split in ("train", "val"):
        for mask_map, point_map in zip(masks.splits[split].instances, points.annotations[split]):
            # Half the objects, each kept whole as one pixel at its mask's centroid.
            every_point = markers_from_instances(mask_map)
            assert np.count_nonzero(point_map) == len(np.unique(sparsify_instances(every_point, 0.5, 0, 0))) - 1
            assert set(np.unique(point_map)) <= set(np.unique(every_point))
    for mask_map, test_map in zip(masks.annotations["test"], points.annotations["test"]):
        np.testing.assert_array_equal(mask_map, test_map)
    batch = next(iter(points.train_dataloader()))
    assert batch["point_labels"].all() and (batch["point_box"] == 12).all()
    test = next(iter(points.test_dataloader()))
    assert not test["point_labels"].any() and (test["point_box"] == 0).all()
    assert "point_labels" not in next(iter(masks.train_dataloader()))


def test_a_box_size_in_microns_uses_each_images_microns_per_pixel(tmp_path):
    from . import native

    root = native.write_monuseg(tmp_path / "monuseg")  # the Aperio XML records 0.25 um per pixel
    options = dict(name="m", source="prepared", format="monuseg", root=str(root), cache_dir=str(tmp_path / "cache"),
                   split={"method": "given", "val": 1}, crop_size=32, eval_tile=32, batch_size=2)
    datamodule = InstanceDataModule(point_labels={"box_size_um": 5.0}, **options)
    datamodule.setup("fit")
    assert datamodule.point_boxes["train"] == [20.0, 20.0] and datamodule.point_boxes["test"] == [None]
    assert (next(iter(datamodule.train_dataloader()))["point_box"] == 20.0).all()
