"""The paper's training augmentation (supplement section 2) as one albumentations pipeline, and the H&E
stain augmentation of Tellez et al. 2018 as an albumentations transform of ours.

Each transform fires with its own probability (paper: 0.5): Gaussian blur with a kernel from {3, 5, 7};
additive Gaussian noise of standard deviation 5 (0-255 scale); rotation by 90, 180 or 270 degrees;
left-right, up-down and diagonal (transpose) flips; HED stain scale-and-shift for H&E data. The random
crop (the power of two of the dataset config) is the pipeline's first step, so image, instance map,
boxes and points always go through the same geometry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
import numpy as np

# Stain matrices of Ruifrok & Johnston 2001 (rows: H, E, DAB), as scikit-image defines them.
from skimage.color import hed_from_rgb as HED_FROM_RGB  # noqa: E402
from skimage.color import rgb_from_hed as RGB_FROM_HED  # noqa: E402


def rgb_to_hed(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) stain concentrations (H, E, DAB) of an RGB uint8 image, in optical-density units
    (scikit-image's ``rgb2hed`` divides these by ln(1e6) = 13.8)."""
    optical_density = -np.log((image.astype(np.float64) + 1.0) / 256.0)
    return optical_density @ HED_FROM_RGB


def hed_to_rgb(stains: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_hed`, rounded and clipped to uint8."""
    optical_density = stains @ RGB_FROM_HED
    return np.clip(np.rint(256.0 * np.exp(-optical_density) - 1.0), 0, 255).astype(np.uint8)


class HEDStainAugment(A.ImageOnlyTransform):
    """Tellez et al. 2018 HED augmentation: per stain channel ``c``, ``s_c <- s_c * alpha_c + beta_c`` with
    ``alpha_c ~ U(1 - sigma, 1 + sigma)`` and ``beta_c ~ U(-bias, bias)``, in colour-deconvolved
    stain space (optical density), then back to RGB. Changes colour only; ``sigma = bias = 0`` is the
    identity. The shift is in optical-density units: 0.05 turns white background into grey level ~243
    (in scikit-image's rescaled ``rgb2hed`` units the same shift would be 13.8x stronger and turn
    background purple, which is why we do not use them).

    Args:
        sigma: scale range half-width, >= 0 (Tellez "HED-light" 0.05, "HED-strong" 0.2).
        bias: shift range half-width in optical density, >= 0 (same presets).
        p: probability of applying it.
    """

    def __init__(self, sigma: float = 0.05, bias: float = 0.05, p: float = 0.5):
        super().__init__(p=p)
        if sigma < 0 or bias < 0:
            raise ValueError(f"HEDStainAugment sigma={sigma} and bias={bias} must be >= 0")
        self.sigma, self.bias = float(sigma), float(bias)

    def get_params(self) -> dict[str, Any]:
        return {"alpha": self.random_generator.uniform(1 - self.sigma, 1 + self.sigma, 3),
                "beta": self.random_generator.uniform(-self.bias, self.bias, 3)}

    def apply(self, img: np.ndarray, alpha: np.ndarray, beta: np.ndarray, **params: Any) -> np.ndarray:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
            raise ValueError(f"HEDStainAugment expects (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        return hed_to_rgb(rgb_to_hed(img) * alpha + beta)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("sigma", "bias")


class AdditiveGaussianNoise(A.ImageOnlyTransform):
    """``image + N(0, std^2)`` per pixel and channel on the 0-255 scale, rounded and clipped to uint8.

    Args:
        std: noise standard deviation in grey levels, >= 0 (paper: 5).
        p: probability of applying it.
    """

    def __init__(self, std: float = 5.0, p: float = 0.5):
        super().__init__(p=p)
        if std < 0:
            raise ValueError(f"AdditiveGaussianNoise std={std} must be >= 0")
        self.std = float(std)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        return {"noise": self.random_generator.normal(0.0, self.std, data["image"].shape)}

    def apply(self, img: np.ndarray, noise: np.ndarray, **params: Any) -> np.ndarray:
        return np.clip(np.rint(img.astype(np.float64) + noise), 0, 255).astype(np.uint8)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("std",)


class RandomQuarterTurn(A.RandomRotate90):
    """Rotation by 90, 180 or 270 degrees (never 0) when it fires, as the paper describes."""

    def get_params(self) -> dict[str, int]:
        return {"factor": self.py_random.randint(1, 3)}


def _opencv_sigma(kernel_size: int) -> float:
    """The sigma OpenCV derives from a Gaussian kernel size when none is given."""
    return 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8


PAPER_STEPS = ("blur", "noise", "rotate90", "hflip", "vflip", "transpose", "stain")


def _probability(step: str, settings: Mapping[str, Any]) -> float:
    p = settings.get("p")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"{step}.p={p!r} must be in [0, 1]")
    return float(p)


def _non_negative(step: str, settings: Mapping[str, Any], key: str) -> float:
    value = settings.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{step}.{key}={value!r} must be a number >= 0")
    return float(value)


def paper_transforms(blur: Mapping[str, Any], noise: Mapping[str, Any], rotate90: Mapping[str, Any],
                     hflip: Mapping[str, Any], vflip: Mapping[str, Any], transpose: Mapping[str, Any],
                     stain: Mapping[str, Any] | None) -> list[A.BasicTransform]:
    """The paper's transforms in order; ``stain=None`` leaves stain augmentation out (non-H&E data). Each
    setting is checked here (a bad one is a ValueError naming ``<step>.<key>``)."""
    kernels: Sequence[int] = blur.get("kernel_sizes", (3, 5, 7))
    if not kernels or any(isinstance(k, bool) or not isinstance(k, int) or k < 3 or k % 2 == 0 for k in kernels):
        raise ValueError(f"blur.kernel_sizes={list(kernels)}: odd sizes >= 3 only")
    steps: list[A.BasicTransform] = [
        # Uniform over the kernel sizes, each with OpenCV's default sigma for that size.
        A.OneOf([A.GaussianBlur(blur_limit=(int(k), int(k)), sigma_limit=(_opencv_sigma(int(k)),) * 2, p=1.0)
                 for k in kernels],
                p=_probability("blur", blur)),
        AdditiveGaussianNoise(std=_non_negative("noise", noise, "std"), p=_probability("noise", noise)),
        RandomQuarterTurn(p=_probability("rotate90", rotate90)),
        A.HorizontalFlip(p=_probability("hflip", hflip)),
        A.VerticalFlip(p=_probability("vflip", vflip)),
        A.Transpose(p=_probability("transpose", transpose)),
    ]
    if stain is not None:
        steps.append(HEDStainAugment(sigma=_non_negative("stain", stain, "sigma"),
                                     bias=_non_negative("stain", stain, "bias"), p=_probability("stain", stain)))
    return steps


def check_augment(augment: Mapping[str, Any] | None) -> None:
    """ValueError naming the first bad key of an ``augment`` config (``conf/augment``): unknown keys, ``p``
    outside [0, 1], negative amounts, a bad ``preview`` count. Builds the pipeline it describes, so every
    setting is checked where it is used."""
    augment = dict(augment or {})
    unknown = sorted(set(augment) - {"enabled", "preview", *PAPER_STEPS})
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; valid: enabled, preview, {', '.join(PAPER_STEPS)}")
    preview = augment.get("preview", 0)
    if isinstance(preview, bool) or not isinstance(preview, int) or preview < 0:
        raise ValueError(f"preview={preview!r} must be an integer >= 0")
    if augment.get("enabled", False):
        missing = [step for step in PAPER_STEPS if not isinstance(augment.get(step), Mapping)]
        if missing:
            raise ValueError(f"{missing[0]} is missing: augment.enabled=true needs settings for "
                             f"{', '.join(PAPER_STEPS)} (see augment=paper)")
        paper_transforms(*(augment[step] for step in PAPER_STEPS))


def build_train_transform(crop_size: int | None, augment: Mapping[str, Any] | None, stain: bool = True) -> A.Compose | None:
    """The training pipeline: random crop (padded with white where the image is smaller) then, when
    ``augment["enabled"]``, the paper's transforms. ``None`` when there is nothing to do.

    Boxes go in as ``bboxes`` (pascal_voc: x_min, y_min, x_max, y_max in pixel edges) with ``box_ids``,
    points as ``keypoints`` (x, y) with ``point_ids``; both come out in the transformed geometry.
    """
    steps: list[A.BasicTransform] = []
    if crop_size:
        steps.append(A.RandomCrop(int(crop_size), int(crop_size), pad_if_needed=True, pad_position="top_left",
                                  border_mode=0, fill=255, fill_mask=0))
    if augment and augment.get("enabled", False):
        steps += paper_transforms(augment["blur"], augment["noise"], augment["rotate90"], augment["hflip"],
                                  augment["vflip"], augment["transpose"], augment["stain"] if stain else None)
    if not steps:
        return None
    return A.Compose(steps, bbox_params=A.BboxParams(format="pascal_voc", label_fields=["box_ids"], clip=True),
                     keypoint_params=A.KeypointParams(format="xy", label_fields=["point_ids"], remove_invisible=True))


def apply_transform(transform: A.Compose, image: np.ndarray, instances: np.ndarray, seed: int,
                    boxes: np.ndarray | None = None, points: np.ndarray | None = None,
                    pixel_ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Run ``transform`` on one sample with its random state set from ``seed`` (reproducible per item).

    ``pixel_ids`` (H, W) int32 (0 = none) travel with the instance map as a second mask channel, so they
    follow every crop, pad, flip, rotation and transpose exactly (``pixel_ids`` in the result)."""
    transform.set_random_seed(int(seed))
    boxes = np.zeros((0, 4), np.float32) if boxes is None else np.asarray(boxes, np.float32)
    points = np.zeros((0, 2), np.float32) if points is None else np.asarray(points, np.float32)
    mask = instances if pixel_ids is None else np.stack([np.asarray(instances, np.int32), pixel_ids], axis=-1)
    out = transform(image=image, mask=mask, bboxes=boxes, box_ids=np.arange(len(boxes)),
                    keypoints=points, point_ids=np.arange(len(points)))
    result = {"image": out["image"], "instances": out["mask"], "boxes": np.asarray(out["bboxes"], np.float32),
              "box_ids": np.asarray(out["box_ids"]), "points": np.asarray(out["keypoints"], np.float32),
              "point_ids": np.asarray(out["point_ids"])}
    if pixel_ids is not None:
        result["instances"], result["pixel_ids"] = out["mask"][..., 0], out["mask"][..., 1]
    return result
