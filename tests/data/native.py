"""Writers of tiny datasets in each native published layout (real .png/.bmp/.tif/.mat/.xml/.txt files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat


def disc_instances(shape=(64, 64), centres=((16, 16), (40, 44), (50, 14)), radius=7) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    instances = np.zeros(shape, np.int32)
    for label, (cy, cx) in enumerate(centres, start=1):
        instances[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = label
    return instances


def rgb(shape=(64, 64), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(60, 250, (*shape, 3), dtype=np.uint8)


def write_cpm15_miccai(root: Path, count=2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        mask = disc_instances()
        Image.fromarray(np.dstack([rgb(seed=i), np.full((64, 64), 255, np.uint8)]), "RGBA").save(root / f"image{i:02d}.png")
        (root / f"image{i:02d}_mask.txt").write_text("\n".join([f"{mask.shape[1]} {mask.shape[0]}", *map(str, mask.ravel())]))
    return root


def write_hovernet(root: Path, splits=("Train", "Test"), per_split=2, with_types=True) -> Path:
    for split in splits:
        images, labels = root / split / "Images", root / split / "Labels"
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for i in range(per_split):
            inst = disc_instances()
            Image.fromarray(np.dstack([rgb(seed=i), np.full((64, 64), 255, np.uint8)]), "RGBA").save(images / f"{split.lower()}_{i + 1}.png")
            variables = {"inst_map": inst.astype(np.float64)}
            if with_types:
                variables |= {"type_map": (inst > 0).astype(np.int32) * 2, "inst_type": np.array([[2], [2], [3]]),
                              "inst_centroid": np.array([[16.0, 16.0], [44.0, 40.0], [14.0, 50.0]])}
            savemat(labels / f"{split.lower()}_{i + 1}.mat", variables)
    return root


def aperio_xml(polygons, mpp=0.25) -> str:
    regions = []
    for number, vertices in enumerate(polygons, start=1):
        verts = "".join(f'<Vertex X="{x}" Y="{y}"/>' for x, y in vertices)
        regions.append(f'<Region Id="{number}" Type="0"><Attributes/><Vertices>{verts}</Vertices></Region>')
    return (f'<Annotations MicronsPerPixel="{mpp}"><Annotation Id="1"><Regions>{"".join(regions)}</Regions>'
            "</Annotation></Annotations>")


SQUARES = [[(5, 5), (20, 5), (20, 20), (5, 20)], [(30, 30), (50, 30), (50, 50), (30, 50)],
           [(40, 40), (45, 40), (45, 45), (40, 45)],  # inside the previous one: drawn on top
           [(60, 2), (61, 2)]]  # degenerate (2 vertices)


def write_monuseg(root: Path, with_test=True) -> Path:
    import tifffile

    train = root / "MoNuSeg 2018 Training Data"
    (train / "Tissue Images").mkdir(parents=True, exist_ok=True)
    (train / "Annotations").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(["TCGA-AA-0001-01Z-00-DX1", "TCGA-BB-0002-01Z-00-DX1", "TCGA-CC-0003-01Z-00-DX1"]):
        tifffile.imwrite(train / "Tissue Images" / f"{name}.tif", rgb(seed=i))
        (train / "Annotations" / f"{name}.xml").write_text(aperio_xml(SQUARES))
    if with_test:
        test = root / "MoNuSegTestData"
        test.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(test / "TCGA-DD-0004-01Z-00-DX1.tif", rgb(seed=9))
        (test / "TCGA-DD-0004-01Z-00-DX1.xml").write_text(aperio_xml(SQUARES[:2]))
    return root


def touching_foreground(shape=(96, 96)) -> tuple[np.ndarray, int]:
    """Two pairs of overlapping discs (radius 13, centres 25 px apart = TNBC's cell size) -> (mask 0/255, 4)."""
    inst = disc_instances(shape, centres=((24, 18), (24, 43), (70, 28), (70, 53)), radius=13)
    return np.where(inst > 0, 255, 0).astype(np.uint8), 4


def write_tnbc(root: Path, slides=("01", "02", "03", "04", "05"), per_slide=2) -> Path:
    mask, _ = touching_foreground()
    for slide in slides:
        (root / f"Slide_{slide}").mkdir(parents=True, exist_ok=True)
        (root / f"GT_{slide}").mkdir(parents=True, exist_ok=True)
        for i in range(per_slide):
            Image.fromarray(rgb((96, 96), seed=i)).save(root / f"Slide_{slide}" / f"{slide}_{i + 1}.png")
            Image.fromarray(mask).save(root / f"GT_{slide}" / f"{slide}_{i + 1}.png")
    return root


def write_wbc(root: Path) -> Path:
    yy, xx = np.mgrid[:200, :200]
    mask = (((yy - 60) ** 2 + (xx - 60) ** 2 <= 37**2) | ((yy - 60) ** 2 + (xx - 130) ** 2 <= 37**2)).astype(np.uint8) * 255
    for split in ("Train", "Test"):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(2):
            Image.fromarray(rgb((200, 200), seed=i)).save(root / split / "images" / f"cell_{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"cell_{i}.png")
    return root


def write_crchisto(root: Path, count=5) -> Path:
    for i in range(1, count + 1):
        folder = root / "Detection" / f"img{i}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb(seed=i)).save(folder / f"img{i}.bmp")
        savemat(folder / f"img{i}_detection.mat", {"detection": np.array([[10.0, 12.0], [33.5, 40.0], [64.0, 64.0]])})
    return root
