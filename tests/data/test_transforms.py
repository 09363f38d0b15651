"""The paper's augmentation: geometry keeps image, mask, boxes and points aligned; probabilities are
honoured; the stain transform changes colour only; evaluation data is never augmented."""

import albumentations as A
import numpy as np
import pytest
import torch

from ece_lightning.data.targets import boxes_from_instances
from ece_lightning.data.transforms import (
    HEDStainAugment,
    RandomQuarterTurn,
    apply_transform,
    build_train_transform,
    paper_transforms,
    rgb_to_hed,
)

PAPER = {"enabled": True, "blur": {"p": 0.5, "kernel_sizes": [3, 5, 7]}, "noise": {"p": 0.5, "std": 5.0},
         "rotate90": {"p": 0.5}, "hflip": {"p": 0.5}, "vflip": {"p": 0.5}, "transpose": {"p": 0.5},
         "stain": {"p": 0.5, "sigma": 0.05, "bias": 0.05}}


def asymmetric_sample(shape=(48, 64)):
    """Instances of different shapes and an image whose red channel encodes the instance id."""
    instances = np.zeros(shape, np.int32)
    instances[3:9, 4:20] = 1
    instances[20:40, 30:36] = 2
    instances[30:47, 50:63] = 3
    instances[33:37, 54:58] = 0  # a hole: boxes still span it
    image = np.zeros((*shape, 3), np.uint8)
    image[..., 0] = instances * 40
    image[..., 1] = (np.arange(shape[1])[None, :] * 3 + np.arange(shape[0])[:, None] * 2) % 256  # geometry shows
    return image, instances


def voc_boxes(instances):
    boxes, ids = boxes_from_instances(instances)
    cx, cy, w, h = boxes.T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), ids


def compose(*steps):
    return A.Compose(list(steps), bbox_params=A.BboxParams(format="pascal_voc", label_fields=["box_ids"], clip=True),
                     keypoint_params=A.KeypointParams(format="xy", label_fields=["point_ids"], remove_invisible=True))


@pytest.mark.parametrize("step", [A.HorizontalFlip(p=1), A.VerticalFlip(p=1), A.Transpose(p=1),
                                  RandomQuarterTurn(p=1)], ids=["hflip", "vflip", "transpose", "rotate90"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_geometric_transforms_keep_image_mask_boxes_and_points_aligned_exactly(step, seed):
    image, instances = asymmetric_sample()
    boxes, ids = voc_boxes(instances)
    # Points are pixel indices (x, y), as albumentations and our readers (CRCHisto: 0-based) use them.
    points = np.array([[4, 3], [30, 20], [62, 46]], np.float32)  # inside instances 1, 2, 3
    out = apply_transform(compose(step), image, instances, seed, boxes=boxes, points=points)
    np.testing.assert_array_equal(out["image"][..., 0], out["instances"] * 40)  # image and mask moved together
    assert out["image"].shape != image.shape or not np.array_equal(out["image"][..., 1], image[..., 1])
    expected, expected_ids = voc_boxes(out["instances"])
    np.testing.assert_array_equal(ids[out["box_ids"]], expected_ids)
    np.testing.assert_allclose(out["boxes"], expected, atol=1e-4)  # each box encloses its instance exactly
    for (x, y), point_id in zip(out["points"], out["point_ids"]):
        assert out["instances"][int(round(y)), int(round(x))] == point_id + 1


def test_random_crop_pads_with_white_and_boxes_still_enclose_their_instance():
    image, instances = asymmetric_sample()
    boxes, ids = voc_boxes(instances)
    transform = build_train_transform(64, augment=None)
    for seed in range(10):
        out = apply_transform(transform, image, instances, seed, boxes=boxes)
        assert out["image"].shape == (64, 64, 3) and (out["image"][48:] == 255).all() and (out["instances"][48:] == 0).all()
        np.testing.assert_array_equal(out["image"][:48, ..., 0], out["instances"][:48] * 40)
        for box, box_id in zip(out["boxes"], out["box_ids"]):
            ys, xs = np.nonzero(out["instances"] == ids[box_id])
            if len(ys):
                assert box[0] <= xs.min() and box[1] <= ys.min() and box[2] >= xs.max() + 1 and box[3] >= ys.max() + 1


@pytest.mark.parametrize("index, name", list(enumerate(["blur", "noise", "rotate90", "hflip", "vflip", "transpose",
                                                         "stain"])))
def test_each_paper_transform_fires_about_half_the_time(index, name):
    step = paper_transforms(PAPER["blur"], PAPER["noise"], PAPER["rotate90"], PAPER["hflip"], PAPER["vflip"],
                            PAPER["transpose"], PAPER["stain"])[index]
    image = np.random.default_rng(0).integers(40, 215, (16, 16, 3), dtype=np.uint8)
    transform = A.Compose([step])
    draws = 600
    fired = 0
    for seed in range(draws):
        transform.set_random_seed(seed)
        fired += not np.array_equal(transform(image=image)["image"], image)
    assert abs(fired / draws - 0.5) < 0.07, f"{name} fired {fired}/{draws}"


def test_quarter_turns_are_90_180_or_270_never_0():
    turn = RandomQuarterTurn(p=1)
    factors = set()
    for seed in range(200):
        A.Compose([turn], seed=seed)
        factors.add(turn.get_params()["factor"])
    assert factors == {1, 2, 3}


def test_noise_has_the_configured_standard_deviation():
    noise = paper_transforms(PAPER["blur"], {"p": 1.0, "std": 5.0}, PAPER["rotate90"], PAPER["hflip"],
                             PAPER["vflip"], PAPER["transpose"], None)[1]
    image = np.full((256, 256, 3), 128, np.uint8)
    out = A.Compose([noise], seed=0)(image=image)["image"].astype(float)
    assert abs((out - 128).std() - 5.0) < 0.3


def test_blur_kernels_come_from_the_configured_sizes():
    blur = paper_transforms({"p": 1.0, "kernel_sizes": [3, 5, 7]}, PAPER["noise"], PAPER["rotate90"], PAPER["hflip"],
                            PAPER["vflip"], PAPER["transpose"], None)[0]
    assert sorted(t.blur_limit[0] for t in blur.transforms) == [3, 5, 7]
    with pytest.raises(ValueError, match="odd sizes"):
        paper_transforms({"p": 1, "kernel_sizes": [4]}, PAPER["noise"], PAPER["rotate90"], PAPER["hflip"],
                         PAPER["vflip"], PAPER["transpose"], None)


def he_tile():
    from ece_lightning.data.synthetic import SyntheticConfig, generate_split

    images, _ = generate_split(0, 0, 1, SyntheticConfig(image_size=128))
    return images[0]


def test_stain_is_identity_at_zero_strength():
    image = he_tile()
    out = A.Compose([HEDStainAugment(sigma=0, bias=0, p=1)], seed=0)(image=image)["image"]
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("seed", range(5))
def test_stain_changes_colour_only(seed):
    image = he_tile()
    out = A.Compose([HEDStainAugment(sigma=0.2, bias=0.2, p=1)], seed=seed)(image=image)["image"]
    assert out.dtype == np.uint8 and out.shape == image.shape and not np.array_equal(out, image)
    before, after = rgb_to_hed(image)[..., 0].ravel(), rgb_to_hed(out)[..., 0].ravel()
    assert np.corrcoef(before, after)[0, 1] > 0.95  # the hematoxylin channel keeps its spatial structure
    colours, first = np.unique(image.reshape(-1, 3), axis=0, return_index=True)
    mapped = {tuple(c): tuple(out.reshape(-1, 3)[i]) for c, i in zip(colours, first)}
    assert all(mapped[tuple(c)] == tuple(o) for c, o in zip(image.reshape(-1, 3)[::37], out.reshape(-1, 3)[::37]))


def test_stain_rejects_negative_strength():
    with pytest.raises(ValueError, match="sigma=-0.1"):
        HEDStainAugment(sigma=-0.1)


def test_datamodule_augments_training_only_and_reproducibly():
    from ece_lightning.data.datamodule import InstanceDataModule

    dm = InstanceDataModule(sparsity=1.0, batch_size=2, num_train=4, num_val=2, num_test=2, image_size=32,
                                crop_size=16, augment=PAPER)
    dm.setup("fit")
    assert dm.datasets["train"].transform is not None
    assert dm.datasets["val"].transform is None and dm.datasets["test"].transform is None
    val = dm.datasets["val"]
    assert torch.equal(val[0]["image"], val[0]["image"])  # evaluation items never change
    torch.manual_seed(7)
    first = dm.datasets["train"][1]
    torch.manual_seed(7)
    again = dm.datasets["train"][1]
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["instances"], again["instances"])
    assert first["image"].shape == (3, 16, 16) and torch.equal(first["target"], (first["instances"] > 0).long())


def test_non_he_datasets_get_no_stain_step():
    with_stain = build_train_transform(None, PAPER, stain=True)
    without = build_train_transform(None, PAPER, stain=False)
    assert any(isinstance(t, HEDStainAugment) for t in with_stain.transforms)
    assert not any(isinstance(t, HEDStainAugment) for t in without.transforms)
    assert build_train_transform(None, {"enabled": False}) is None


@pytest.mark.parametrize("crop", [24, 64])  # inside the images, and larger than one (padding)
def test_pixel_ids_follow_crops_flips_turns_and_transposes(crop):
    from ece_lightning.data.dataset import InstanceMapDataset

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (40, 50, 3), dtype=np.uint8), rng.integers(0, 255, (30, 36, 3), dtype=np.uint8)]
    instances = [np.zeros(image.shape[:2], np.int32) for image in images]
    geometric = {"enabled": True, "blur": {"p": 0.0, "kernel_sizes": [3]}, "noise": {"p": 0.0, "std": 5.0},
                 "rotate90": {"p": 0.5}, "hflip": {"p": 0.5}, "vflip": {"p": 0.5}, "transpose": {"p": 0.5},
                 "stain": {"p": 0.0, "sigma": 0.05, "bias": 0.05}}
    dataset = InstanceMapDataset(images, instances, crop, random_crops=True, samples_per_epoch=16,
                                 transform=build_train_transform(crop, geometric), pixel_ids=True)
    assert dataset.num_pixels == 40 * 50 + 30 * 36
    source = np.concatenate([image.reshape(-1, 3) for image in images])
    torch.manual_seed(0)
    for item in range(16):
        sample = dataset[item]
        pixels = sample["pixels"].numpy()
        rgb = (sample["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        inside = pixels >= 0
        assert inside.any() and np.array_equal(rgb[inside], source[pixels[inside]])
        assert (rgb[~inside] == 255).all()  # padding is white and has no id
        assert len(np.unique(pixels[inside])) == inside.sum()  # each source pixel at most once
