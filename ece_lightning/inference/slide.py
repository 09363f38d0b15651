"""Read regions of large images: plain PNG/JPEG/TIFF, tiled pyramidal TIFF (SVS and other TIFF-based
slides, through tifffile, one tile or strip at a time) and, when the optional ``openslide-python`` is
installed, vendor slide formats.

Every source serves RGB uint8 regions of one pyramid level; pixels outside the image read as white
(255), the colour of glass. Coordinates are ``(row, column)`` pixels of the chosen level; ``downsample``
turns them into level-0 pixels.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SlideError

PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
TIFF_SUFFIXES = (".tif", ".tiff", ".svs", ".ndpi", ".scn", ".bif", ".ome.tif", ".ome.tiff")
OPENSLIDE_SUFFIXES = (".mrxs", ".vms", ".vmu", ".svslide")
BACKGROUND = 255


class ImageSource:
    """One pyramid level of an image. Subclasses implement ``_read(top, left, height, width)`` for a region
    that lies inside the level.

    Attributes:
        path: the file.
        level: the level served (0 = full resolution).
        shape: (height, width) of that level in pixels.
        downsample: level-0 pixels per pixel of this level (1.0 at level 0).
        mpp: microns per pixel of this level, or None when the file does not record it.
        level_shapes, level_downsamples: every level of the file.
    """

    path: Path
    level: int
    shape: tuple[int, int]
    downsample: float
    mpp: float | None
    level_shapes: list[tuple[int, int]]
    level_downsamples: list[float]

    def read_region(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        """(height, width, 3) uint8 RGB; the part outside the image is white."""
        out = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + height, self.shape[0]), min(left + width, self.shape[1])
        if y1 > y0 and x1 > x0:
            out[y0 - top : y1 - top, x0 - left : x1 - left] = self._read(y0, x0, y1 - y0, x1 - x0)
        return out

    def _read(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        raise NotImplementedError

    def thumbnail(self, max_side: int = 2048) -> tuple[np.ndarray, float]:
        """A small RGB image of the served level (long side about ``max_side``) and its scale (served-level
        pixels per thumbnail pixel), read from the coarsest pyramid level that still has ``max_side``
        pixels on its long side, one band of rows at a time."""
        coarser = [lvl for lvl, shape in enumerate(self.level_shapes)
                   if lvl > self.level and max(shape) >= max_side]
        source = self._open_level(coarser[-1]) if coarser else self
        try:
            ratio = self.level_downsamples[source.level] / self.downsample  # served px per source px
            scale = max(1.0, max(source.shape) / max_side)
            return source._read_scaled(scale), scale * ratio
        finally:
            if source is not self:
                source.close()

    def _open_level(self, level: int) -> ImageSource:
        return self

    def _read_scaled(self, scale: float) -> np.ndarray:
        # Row bands of the served level, subsampled: memory stays at one band.
        out_h, out_w = max(1, int(self.shape[0] / scale)), max(1, int(self.shape[1] / scale))
        rows = np.minimum((np.arange(out_h) * scale).astype(np.int64), self.shape[0] - 1)
        cols = np.minimum((np.arange(out_w) * scale).astype(np.int64), self.shape[1] - 1)
        out = np.empty((out_h, out_w, 3), np.uint8)
        band = 512
        for start in range(0, self.shape[0], band):
            stop = min(start + band, self.shape[0])
            wanted = (rows >= start) & (rows < stop)
            if wanted.any():
                region = self._read(start, 0, stop - start, self.shape[1])
                out[wanted] = region[rows[wanted] - start][:, cols]
        return out

    def close(self) -> None:
        pass

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def describe(self) -> str:
        mpp = f", {self.mpp:.4g} um/px" if self.mpp else ""
        return (f"{self.path.name}: level {self.level} of {len(self.level_shapes)}, {self.shape[1]} x {self.shape[0]} px"
                f" (downsample {self.downsample:g}{mpp})")


def _to_rgb(array: np.ndarray, path: Path) -> np.ndarray:
    """RGB uint8 of a grey, grey+alpha, RGB or RGBA array (uint8 or uint16)."""
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise SlideError(f"{path}: pixel type {array.dtype} is not supported (uint8 or uint16 RGB/grey)")
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    if array.shape[-1] in (1, 2):
        return np.repeat(array[..., :1], 3, axis=2)
    if array.shape[-1] in (3, 4):
        return array[..., :3]
    raise SlideError(f"{path}: {array.shape[-1]} samples per pixel is not an image (grey, RGB or RGBA)")


class ArraySource(ImageSource):
    """An image held in memory (plain PNG/JPEG files, or an array given directly)."""

    def __init__(self, image: np.ndarray, path: str | Path = "<array>", mpp: float | None = None):
        self.path = Path(path)
        self.image = _to_rgb(np.asarray(image), self.path)
        self.level, self.downsample, self.mpp = 0, 1.0, mpp
        self.shape = tuple(self.image.shape[:2])
        self.level_shapes, self.level_downsamples = [self.shape], [1.0]

    def _read(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        return self.image[top : top + height, left : left + width]


class TiffSource(ImageSource):
    """A level of a (pyramidal, tiled or stripped) TIFF read one segment at a time: memory holds the
    requested region plus a small cache of decoded tiles, never the level."""

    def __init__(self, path: str | Path, level: int = 0, cache_bytes: int = 64 << 20):
        import tifffile

        self.path = Path(path)
        try:
            self._tiff = tifffile.TiffFile(self.path)
        except Exception as error:  # tifffile raises several types for a bad file
            raise SlideError(f"{self.path}: not a readable TIFF ({error})") from None
        # The main scan is the largest series (Leica SCN and some others put a macro image first).
        series = max(self._tiff.series, key=lambda s: int(np.prod(s.levels[0].shape[:2])))
        self._levels = [lvl.keyframe for lvl in series.levels]
        self.level_shapes = [tuple(int(s) for s in page.shape[:2]) for page in self._levels]
        base = self.level_shapes[0]
        self.level_downsamples = [float(np.mean([base[0] / s[0], base[1] / s[1]])) for s in self.level_shapes]
        if not 0 <= level < len(self._levels):
            raise SlideError(f"{self.path}: level={level} does not exist; the file has levels 0..{len(self._levels) - 1} "
                             f"({', '.join(f'{w}x{h}' for h, w in self.level_shapes)})")
        self.level = level
        self._page = self._levels[level]
        if self._page.planarconfig != 1 and self._page.samplesperpixel > 1:
            raise SlideError(f"{self.path}: planar (separate-plane) TIFFs are not supported; save it interleaved")
        self.shape = self.level_shapes[level]
        self.downsample = self.level_downsamples[level]
        base_mpp = tiff_mpp(self._tiff)
        self.mpp = base_mpp * self.downsample if base_mpp else None
        page = self._page
        if page.is_tiled:
            self._segment = (int(page.tilelength), int(page.tilewidth))
        else:
            rows = int(page.rowsperstrip or self.shape[0])
            self._segment = (min(rows, self.shape[0]), self.shape[1])
        self._per_row = math.ceil(self.shape[1] / self._segment[1])
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_bytes, self._cached = cache_bytes, 0

    def _decoded(self, index: int) -> np.ndarray:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        page = self._page
        offset, count = page.dataoffsets[index], page.databytecounts[index]
        if count == 0:  # a tile the writer left out: treat as background
            segment = np.full((*self._segment, 3), BACKGROUND, np.uint8)
        else:
            handle = self._tiff.filehandle
            handle.seek(offset)
            try:
                decoded, _, _ = page.decode(handle.read(count), index, jpegtables=page.jpegtables)
            except Exception as error:  # codecs raise their own types
                raise SlideError(f"{self.path}: cannot decode tile {index} of level {self.level}: {error}") from None
            segment = _to_rgb(decoded.reshape(decoded.shape[-3:]), self.path)
        self._cache[index] = segment
        self._cached += segment.nbytes
        while self._cached > self._cache_bytes and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached -= dropped.nbytes
        return segment

    def _read(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        seg_h, seg_w = self._segment
        out = np.empty((height, width, 3), np.uint8)
        for row in range(top // seg_h, (top + height - 1) // seg_h + 1):
            for col in range(left // seg_w, (left + width - 1) // seg_w + 1):
                segment = self._decoded(row * self._per_row + col)
                y0, x0 = max(top, row * seg_h), max(left, col * seg_w)
                y1 = min(top + height, row * seg_h + segment.shape[0], self.shape[0])
                x1 = min(left + width, col * seg_w + segment.shape[1], self.shape[1])
                out[y0 - top : y1 - top, x0 - left : x1 - left] = \
                    segment[y0 - row * seg_h : y1 - row * seg_h, x0 - col * seg_w : x1 - col * seg_w]
        return out

    def _open_level(self, level: int) -> ImageSource:
        return TiffSource(self.path, level)

    def close(self) -> None:
        self._tiff.close()
        self._cache.clear()


class OpenSlideSource(ImageSource):
    """A level of a slide read by OpenSlide (optional: ``pip install openslide-python openslide-bin``)."""

    def __init__(self, path: str | Path, level: int = 0):
        self.path = Path(path)
        try:
            import openslide
        except ImportError:
            raise SlideError(f"{self.path}: {self.path.suffix} slides need OpenSlide: "
                             "pip install 'ece-lightning[slides]' (openslide-python and openslide-bin)") from None
        self._slide = openslide.OpenSlide(str(self.path))
        self.level_shapes = [(int(h), int(w)) for w, h in self._slide.level_dimensions]
        self.level_downsamples = [float(d) for d in self._slide.level_downsamples]
        if not 0 <= level < len(self.level_shapes):
            raise SlideError(f"{self.path}: level={level} does not exist; the slide has levels 0..{len(self.level_shapes) - 1}")
        self.level, self.shape, self.downsample = level, self.level_shapes[level], self.level_downsamples[level]
        mpp = self._slide.properties.get("openslide.mpp-x")
        self.mpp = float(mpp) * self.downsample if mpp else None

    def _read(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        origin = (int(round(left * self.downsample)), int(round(top * self.downsample)))
        rgba = np.asarray(self._slide.read_region(origin, self.level, (width, height)))
        rgb = rgba[..., :3].copy()
        rgb[rgba[..., 3] == 0] = BACKGROUND  # unscanned areas come back transparent: glass, not black
        return rgb

    def _open_level(self, level: int) -> ImageSource:
        return OpenSlideSource(self.path, level)

    def close(self) -> None:
        self._slide.close()


def tiff_mpp(tiff: Any) -> float | None:
    """Microns per level-0 pixel recorded in a TIFF: Aperio's ``MPP = x`` description, else the resolution
    tags when their unit is centimetre or inch and the value is microscopic (< 100 um/px)."""
    page = tiff.pages[0]
    match = re.search(r"MPP\s*=\s*([0-9.eE+-]+)", page.description or "")
    if match:
        return float(match.group(1))
    tags = page.tags
    if "XResolution" not in tags or "ResolutionUnit" not in tags:
        return None
    numerator, denominator = tags["XResolution"].value
    unit = int(tags["ResolutionUnit"].value)
    if not numerator or not denominator or unit not in (2, 3):
        return None
    per_unit = numerator / denominator
    mpp = (1e4 if unit == 3 else 25400.0) / per_unit
    return mpp if mpp < 100 else None


def choose_level(level_downsamples: list[float], base_mpp: float | None, target_mpp: float, path: Path) -> int:
    """The level whose resolution is closest to ``target_mpp`` (in log scale)."""
    if not base_mpp:
        raise SlideError(f"{path}: the file records no microns per pixel, so mpp={target_mpp} cannot choose a level; "
                         "pass input_mpp=<um per level-0 pixel> or level=<index>")
    distances = [abs(math.log(base_mpp * d / target_mpp)) for d in level_downsamples]
    return int(np.argmin(distances))


def open_image(path: str | Path, level: int | None = None, mpp: float | None = None,
               input_mpp: float | None = None) -> ImageSource:
    """An ``ImageSource`` for ``path`` at ``level``, or at the level closest to ``mpp`` microns per pixel
    (default: level 0).

    Args:
        path: PNG/JPEG/BMP (read whole), TIFF-based files (.tif/.tiff/.svs/.ndpi/.scn/.bif, tiled or not,
            pyramidal or not; read a tile at a time) or, with OpenSlide installed, .mrxs/.vms/.vmu.
        level: pyramid level index (exclusive with ``mpp``).
        mpp: wanted microns per pixel; needs the file's resolution or ``input_mpp``.
        input_mpp: microns per level-0 pixel, overriding what the file records.
    """
    path = Path(path)
    if not path.is_file():
        raise SlideError(f"{path}: no such file")
    if level is not None and mpp is not None:
        raise SlideError(f"{path}: give level={level} or mpp={mpp}, not both")
    if input_mpp is not None and not input_mpp > 0:
        raise SlideError(f"input_mpp={input_mpp} must be > 0 (microns per level-0 pixel)")
    if mpp is not None and not mpp > 0:
        raise SlideError(f"mpp={mpp} must be > 0 (microns per pixel)")
    name = path.name.lower()
    if name.endswith(PLAIN_SUFFIXES):
        if level not in (None, 0):
            raise SlideError(f"{path}: a plain image has only level 0, not level={level}")
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None  # a large PNG is what this tool is for
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except Exception as error:
            raise SlideError(f"{path}: not a readable image ({error})") from None
        return ArraySource(array, path, mpp=input_mpp)
    if name.endswith(TIFF_SUFFIXES):
        opener = TiffSource
    elif name.endswith(OPENSLIDE_SUFFIXES):
        opener = OpenSlideSource
    else:
        suffixes = ", ".join(PLAIN_SUFFIXES + TIFF_SUFFIXES + OPENSLIDE_SUFFIXES)
        raise SlideError(f"{path}: unsupported file type {path.suffix!r}; readable: {suffixes}")
    source = opener(path, 0)
    base_mpp = input_mpp or (source.mpp if source.mpp else None)
    chosen = choose_level(source.level_downsamples, base_mpp, mpp, path) if mpp is not None else (level or 0)
    if chosen != 0 or (level or 0) != 0:
        source.close()
        source = opener(path, chosen)
    if input_mpp:
        source.mpp = input_mpp * source.downsample
    return source
