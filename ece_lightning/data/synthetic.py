"""Seeded generator of H&E-like tiles with exhaustive nucleus instance maps.

The tiles are rendered in optical-density space (Beer-Lambert), the way stained tissue absorbs
light: each pixel holds a hematoxylin and an eosin concentration that are mixed with per-image
stain vectors and turned into RGB. Nuclei are irregular ellipses of varied size, texture and
stain uptake (dark hyperchromatic ones, pale vesicular ones), placed in clusters that touch;
the stroma is eosin-pink with fibres, a faint hematoxylin haze, dense eosinophilic patches and
red blood cells. Illumination gradients, blur and noise finish the tile. Pale nuclei and dark
stroma overlap in intensity, so a global threshold does not solve it (see the tests).

Every tile is a pure function of ``(seed, index)``: splits use disjoint index ranges, so they are
deterministic and never share a tile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..instances import relabel_sequential

# Stain optical-density vectors (RGB absorbance per unit concentration), close to the
# Ruifrok-Johnston H&E vectors; each tile perturbs them to mimic lab-to-lab stain variation.
_HEMATOXYLIN = np.array([0.65, 0.70, 0.29])
_EOSIN = np.array([0.07, 0.99, 0.11])
_BLOOD = np.array([0.10, 0.90, 0.75])  # red blood cells: strong absorption in green and blue


@dataclass(frozen=True)
class SyntheticConfig:
    """Appearance parameters of the synthetic tiles.

    Args:
        image_size: side of the square tile in pixels (>= 32).
        nuclei_per_megapixel: range of nucleus densities; a tile draws one value uniformly.
        radius: range of nucleus mean radii in pixels.
        elongation: range of the ellipse axis ratio (1 = round).
        cluster_fraction: fraction of nuclei placed in touching clusters rather than scattered.
        pale_fraction: fraction of nuclei with low hematoxylin uptake (vesicular).
        blood_cells_per_megapixel: density of unannotated red blood cells.
        blur_sigma: range of the Gaussian blur sigma in pixels.
        noise_std: range of the additive noise std on the 0-255 scale.
    """

    image_size: int = 128
    nuclei_per_megapixel: tuple[float, float] = (900.0, 2200.0)
    radius: tuple[float, float] = (3.5, 7.5)
    elongation: tuple[float, float] = (1.0, 1.9)
    cluster_fraction: float = 0.5
    pale_fraction: float = 0.3
    blood_cells_per_megapixel: tuple[float, float] = (0.0, 500.0)
    blur_sigma: tuple[float, float] = (0.4, 1.2)
    noise_std: tuple[float, float] = (2.0, 7.0)

    def __post_init__(self) -> None:
        if self.image_size < 32:
            raise ValueError(f"image_size={self.image_size} is too small: use at least 32 pixels")
        for name in ("nuclei_per_megapixel", "radius", "elongation", "blood_cells_per_megapixel",
                     "blur_sigma", "noise_std"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name}=({low}, {high}) must be a range with 0 <= low <= high")
        for name in ("cluster_fraction", "pale_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value} must lie in [0, 1]")


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std low-frequency noise field."""
    field = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-8)


def _nucleus_shape(rng: np.random.Generator, mean_radius: float, elongation: float) -> np.ndarray:
    """Boolean mask of an irregular ellipse: an ellipse whose radius wobbles with low harmonics."""
    half = int(np.ceil(mean_radius * elongation * 1.4)) + 1
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    theta = rng.uniform(0, np.pi)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    a = mean_radius * np.sqrt(elongation)
    b = mean_radius / np.sqrt(elongation)
    angle = np.arctan2(v / b, u / a)
    wobble = np.ones_like(angle)
    for harmonic in (2, 3, 5):
        wobble += rng.normal(0, 0.045) * np.cos(harmonic * angle + rng.uniform(0, 2 * np.pi))
    return (u / a) ** 2 + (v / b) ** 2 <= wobble**2


def _place_centres(rng: np.random.Generator, count: int, size: int, cfg: SyntheticConfig) -> np.ndarray:
    """Nucleus centres: a mix of scattered ones and tight clusters (which yields touching nuclei)."""
    n_clustered = int(round(count * cfg.cluster_fraction))
    scattered = rng.uniform(-4, size + 4, size=(count - n_clustered, 2))
    clustered = []
    while len(clustered) < n_clustered:
        centre = rng.uniform(0, size, size=2)
        members = rng.integers(3, 9)
        spread = rng.uniform(1.2, 2.0) * np.mean(cfg.radius) * np.sqrt(members)
        clustered.extend(centre + rng.normal(0, spread / 2, size=(members, 2)))
    clustered_arr = np.asarray(clustered[:n_clustered]).reshape(-1, 2)
    return np.concatenate([scattered, clustered_arr])


def _stamp(target: np.ndarray, mask: np.ndarray, top: int, left: int) -> tuple[slice, slice, np.ndarray]:
    """Clip a local mask at (top, left) to the target; returns the target slices and the clipped mask."""
    h, w = target.shape
    mh, mw = mask.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + mh, h), min(left + mw, w)
    if y0 >= y1 or x0 >= x1:
        return slice(0, 0), slice(0, 0), mask[:0, :0]
    return slice(y0, y1), slice(x0, x1), mask[y0 - top : y1 - top, x0 - left : x1 - left]


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 4-connected piece so an overlapped nucleus never becomes two fragments."""
    components, n = ndi.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(components.ravel())[1:]
    return components == (1 + int(np.argmax(sizes)))


def generate_tile(seed: int, index: int, cfg: SyntheticConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render tile ``index`` of the dataset with ``seed``.

    Returns:
        image: (H, W, 3) uint8 RGB.
        instances: (H, W) int32 exhaustive instance map, 0 = background, labels 1..N contiguous.
    """
    cfg = cfg or SyntheticConfig()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 0x5EC]))
    size = cfg.image_size
    shape = (size, size)

    instances = np.zeros(shape, dtype=np.int32)
    hema = np.zeros(shape)
    area_mp = size * size / 1e6
    count = rng.poisson(rng.uniform(*cfg.nuclei_per_megapixel) * area_mp)
    centres = _place_centres(rng, count, size, cfg)
    chromatin = _smooth_noise(rng, shape, 0.8)
    label = 0
    for cy, cx in centres:
        radius = rng.uniform(*cfg.radius)
        shape_mask = _nucleus_shape(rng, radius, rng.uniform(*cfg.elongation))
        half = shape_mask.shape[0] // 2
        ys, xs, local = _stamp(instances, shape_mask, int(round(cy)) - half, int(round(cx)) - half)
        # A nucleus may overlap an earlier one a little (touching cells) but not hide behind it.
        free = _largest_component(local & (instances[ys, xs] == 0))
        if free.sum() < max(6, 0.6 * local.sum()):
            continue
        label += 1
        instances[ys, xs][free] = label
        pale = rng.random() < cfg.pale_fraction
        uptake = rng.uniform(0.35, 0.6) if pale else rng.uniform(0.75, 1.3)
        texture = 1.0 + (0.35 if pale else 0.15) * chromatin[ys, xs]
        if pale:  # vesicular nucleus: chromatin gathers at the membrane
            dist = ndi.distance_transform_edt(free)
            texture = texture * (0.7 + 0.6 * np.exp(-dist / 1.5))
        hema[ys, xs][free] = uptake * texture[free]

    # Stroma: eosin with fibres and dense patches, a faint hematoxylin haze (cytoplasm, mucus).
    fibres = np.abs(ndi.gaussian_filter(rng.standard_normal(shape), (0.7, 6.0) if rng.random() < 0.5 else (6.0, 0.7)))
    fibres /= fibres.max() + 1e-8
    patches = np.clip(_smooth_noise(rng, shape, size / 10), 0, None)
    eosin = rng.uniform(0.15, 0.35) + 0.25 * fibres + rng.uniform(0.1, 0.45) * patches
    eosin *= np.clip(1.0 + 0.25 * _smooth_noise(rng, shape, 3.0), 0.3, None)
    haze = np.clip(rng.uniform(0.05, 0.2) + 0.12 * _smooth_noise(rng, shape, size / 8), 0, None)
    hema = np.where(instances > 0, hema, haze)
    eosin = np.where(instances > 0, 0.35 * eosin, eosin)

    # Red blood cells: small, dark, unannotated discs that a grey-level threshold confuses with nuclei.
    blood = np.zeros(shape)
    for _ in range(rng.poisson(rng.uniform(*cfg.blood_cells_per_megapixel) * area_mp)):
        disc = _nucleus_shape(rng, rng.uniform(2.5, 4.0), 1.1)
        half = disc.shape[0] // 2
        cy, cx = rng.uniform(0, size, size=2)
        ys, xs, local = _stamp(blood, disc, int(cy) - half, int(cx) - half)
        free = local & (instances[ys, xs] == 0)
        blood[ys, xs][free] = rng.uniform(0.6, 1.0)

    h_vec = _HEMATOXYLIN + rng.normal(0, 0.06, 3)
    e_vec = _EOSIN + rng.normal(0, 0.06, 3)
    h_vec, e_vec = (np.clip(v, 0.02, None) / np.linalg.norm(np.clip(v, 0.02, None)) for v in (h_vec, e_vec))
    optical_density = (
        rng.uniform(0.8, 1.3) * hema[..., None] * h_vec
        + rng.uniform(0.7, 1.2) * eosin[..., None] * e_vec
        + blood[..., None] * _BLOOD
    )
    illumination = 240.0 * (1.0 + 0.12 * _smooth_noise(rng, shape, size / 3))[..., None]
    rgb = illumination * np.exp(-optical_density)
    rgb = ndi.gaussian_filter(rgb, sigma=(rng.uniform(*cfg.blur_sigma),) * 2 + (0,))
    rgb += rng.normal(0, rng.uniform(*cfg.noise_std), rgb.shape)
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return image, relabel_sequential(instances)


def generate_split(seed: int, start: int, count: int, cfg: SyntheticConfig | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Tiles ``start .. start+count-1`` stacked: images (N, H, W, 3) uint8, instances (N, H, W) int32."""
    tiles = [generate_tile(seed, start + i, cfg) for i in range(count)]
    images = np.stack([t[0] for t in tiles])
    instances = np.stack([t[1] for t in tiles])
    return images, instances
