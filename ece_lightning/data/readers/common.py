"""What every native-format reader shares: the item/sample records, pairing, image and .mat loading.

A reader has two steps so preparation can show progress and stream to the cache:
``list_items(root, **options)`` discovers and pairs the files (cheap; layout errors are raised here),
``load_item(item, **options)`` reads one image and its annotation into a :class:`Sample`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DatasetError

IMAGE_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg"})


@dataclass
class Item:
    """One image of a raw dataset before reading: its id, the files it comes from, and where known the
    split the dataset itself assigns (``train``/``test``) and the group (slide or patient) it belongs to."""

    id: str
    image: Path
    annotation: Path | None
    split: str | None = None
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        return [p for p in (self.image, self.annotation) if p is not None]


@dataclass
class Sample:
    """One read image: RGB uint8 (H, W, 3), an int32 instance map (0 = background) or, for datasets
    with centroids only, (K, 2) float32 points as (x, y) in pixels; ``warnings`` are things skipped
    inside the sample (e.g. degenerate polygons), reported by the preparation summary."""

    id: str
    image: np.ndarray
    instances: np.ndarray | None = None
    points: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def num_objects(self) -> int:
        if self.instances is not None:
            return int(np.count_nonzero(np.bincount(self.instances.ravel())[1:]))
        return 0 if self.points is None else len(self.points)


@dataclass(frozen=True)
class DatasetFormat:
    """A registered native format: its reader pair, a description of the layout for error messages,
    and where the data can be obtained."""

    name: str
    list_items: Callable[..., list[Item]]
    load_item: Callable[..., Sample]
    layout: str
    source: str
    annotation: str = "instances"  # or "points"


def require_folder(folder: Path, fmt: DatasetFormat | str, what: str = "dataset folder") -> Path:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"{folder}: {what} not found. {hint(fmt)}")
    return folder


def hint(fmt: DatasetFormat | str) -> str:
    if isinstance(fmt, str):
        return fmt
    return f"Expected the {fmt.name} layout: {fmt.layout}. Obtain it from: {fmt.source}"


def pair_files(images: dict[str, Path], annotations: dict[str, Path], where: Path, strict: bool,
               skipped: list[str]) -> list[str]:
    """Keys present on both sides. Unpaired files raise (``strict``) or are added to ``skipped``."""
    lonely = sorted(f"{images[k]} (image without annotation)" for k in set(images) - set(annotations))
    lonely += sorted(f"{annotations[k]} (annotation without image)" for k in set(annotations) - set(images))
    if lonely and strict:
        raise DatasetError(f"{where}: unpaired files: {'; '.join(lonely)} "
                           "(set dataset.strict=false to skip them and report them instead)")
    skipped.extend(lonely)
    return sorted(set(images) & set(annotations))


def by_stem(paths: Iterable[Path], suffix: str = "") -> dict[str, Path]:
    """Map file stems (with ``suffix`` removed from the stem) to paths."""
    return {p.stem.removesuffix(suffix): p for p in sorted(paths) if p.is_file()}


def images_in(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` (any common raster suffix, any case) by stem."""
    return by_stem(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def format_listing_with_itself(name: str, list_items: Callable[..., list[Item]], load_item: Callable[..., Sample],
                               layout: str, source: str) -> DatasetFormat:
    """A DatasetFormat whose lister takes the format as second argument (to name it in its errors)."""
    fmt: DatasetFormat

    def list_with_format(root: str | Path, **options: object) -> list[Item]:
        return list_items(root, fmt, **options)

    fmt = DatasetFormat(name=name, list_items=list_with_format, load_item=load_item, layout=layout, source=source)
    return fmt


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a PNG/BMP/JPEG/TIFF (RGBA drops alpha, grey is repeated), or a DatasetError."""
    return _to_rgb_uint8(_decode(Path(path), "image", rgb=True), Path(path))


def _decode(path: Path, what: str, rgb: bool) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path}: {what} file not found")
    try:
        return _read_array(path, rgb=rgb)
    except Exception as error:  # PIL/tifffile raise many types for corrupt files
        raise DatasetError(f"{path}: unreadable or corrupt {what} ({type(error).__name__}: {error})") from None


def _read_array(path: Path, rgb: bool) -> np.ndarray:
    """PIL first (it decodes LZW/deflate TIFFs without extra codecs); tifffile for TIFFs PIL cannot open."""
    from PIL import Image

    try:
        with Image.open(path) as handle:
            handle.load()
            if rgb and handle.mode not in {"RGB", "RGBA", "L"}:
                handle = handle.convert("RGB")
            return np.asarray(handle)
    except Exception:
        if path.suffix.lower() not in {".tif", ".tiff"}:
            raise
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return tif.pages[0].asarray()


def _to_rgb_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise DatasetError(f"{path}: expected an RGB(A) or grey image, got array of shape {array.shape}")
    array = array[..., :3]
    if array.dtype != np.uint8:
        if array.dtype == np.uint16:
            array = (array // 257).astype(np.uint8)
        else:
            raise DatasetError(f"{path}: expected 8-bit pixels, got {array.dtype}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DatasetError(f"{path}: empty image ({array.shape[1]}x{array.shape[0]})")
    return np.ascontiguousarray(array)


def read_mask(path: Path) -> np.ndarray:
    """(H, W) 2-D array of a mask image (PNG/BMP/TIFF); colour masks are reduced to their max channel."""
    path = Path(path)
    array = _decode(path, "mask", rgb=False)
    if array.ndim == 3:
        array = array[..., :3].max(axis=-1)
    if array.ndim != 2:
        raise DatasetError(f"{path}: expected a 2-D mask, got array of shape {array.shape}")
    return array


def load_mat(path: Path, required: Iterable[str]) -> dict[str, np.ndarray]:
    """Variables of a MATLAB .mat file (v5; v7.3/HDF5 gives a clear error) with every ``required`` key."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: .mat file not found")
    try:
        data = loadmat(path)
    except NotImplementedError:
        raise DatasetError(f"{path}: MATLAB v7.3 (HDF5) file; re-save it with save(..., '-v7') or older") from None
    except Exception as error:
        raise DatasetError(f"{path}: unreadable .mat file ({type(error).__name__}: {error})") from None
    variables = {k: v for k, v in data.items() if not k.startswith("__")}
    missing = [k for k in required if k not in variables]
    if missing:
        raise DatasetError(f"{path}: .mat file has no {', '.join(map(repr, missing))} "
                           f"(variables found: {', '.join(sorted(variables)) or 'none'})")
    return variables


def check_same_size(image: np.ndarray, mask: np.ndarray, mask_path: Path, image_path: Path) -> None:
    if mask.shape[:2] != image.shape[:2]:
        raise DatasetError(f"{mask_path}: annotation is {mask.shape[1]}x{mask.shape[0]} but "
                           f"{Path(image_path).name} is {image.shape[1]}x{image.shape[0]} (W x H)")


def as_instance_map(array: np.ndarray, path: Path) -> np.ndarray:
    """Validate an integer label map (non-negative, integral) and return it as int32."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise DatasetError(f"{path}: instance map must be 2-D, got shape {array.shape}")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise DatasetError(f"{path}: instance map holds non-integer values")
    elif array.dtype.kind not in "iub":
        raise DatasetError(f"{path}: instance map must hold integers, got {array.dtype}")
    if array.size and array.min() < 0:
        raise DatasetError(f"{path}: negative instance label {array.min()}")
    return array.astype(np.int32)
