"""Tiled prediction at growing image sizes: wall time, megapixels per second and peak memory, each size in
a fresh process (peak RSS is per process). ``ece-bench predict`` prints the table.

The default network is ``ThresholdSegmenter`` (a 'perfect' pointwise model, so the numbers are those of the
pipeline: reading, stitching, post-processing, writing) with its object count checked against the slide's
disks; ``--model unet`` adds a U-Net's cost (random weights, so its objects mean nothing).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PredictBenchRow:
    size: int
    model: str
    device: str
    precision: str
    objects: int
    expected: int | None
    wall_s: float
    megapixels_per_s: float
    rss_before_mib: float
    peak_rss_mib: float


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(slide: Path, expected: int, model: str, width: int, device: str, precision: str, tile: int,
            batch_size: int, output: Path) -> dict:
    """Predict ``slide`` in this process (called in a fresh one by ``bench_predict``)."""
    import torch

    from ..inference.engine import PredictOptions, predict_slide
    from ..inference.predictors import SegmentationTiles
    from ..inference.slide import open_image
    from .slides import ThresholdSegmenter

    torch.manual_seed(0)
    if model == "threshold":
        predictor = SegmentationTiles(ThresholdSegmenter(), multiple=4, postprocess={"method": "components"},
                                      device=device, precision=precision)
    else:
        from ..models import UNet

        predictor = SegmentationTiles(UNet(base_channels=width, depth=4), multiple=16,
                                      postprocess={"method": "components"}, device=device, precision=precision)
    with open_image(slide) as source:
        source.read_region(0, 0, 16, 16)
        before = _rss_mib()
        started = time.perf_counter()
        summary = predict_slide(predictor, source, output,
                                PredictOptions(tile=tile, batch_size=batch_size, tissue=False, progress=False,
                                               resume=False))
        wall = time.perf_counter() - started
    size = source.shape[0]
    return {"size": size, "model": model, "device": str(predictor.device), "precision": precision,
            "objects": summary["objects"], "expected": expected if model == "threshold" else None, "wall_s": wall,
            "megapixels_per_s": size * size / 1e6 / wall, "rss_before_mib": before, "peak_rss_mib": _rss_mib()}


def bench_predict(sizes: list[int], model: str = "threshold", width: int = 16, device: str = "cpu",
                  precision: str = "32", tile: int = 512, batch_size: int = 8) -> list[PredictBenchRow]:
    from .slides import disk_centres, write_disk_slide

    rows = []
    with tempfile.TemporaryDirectory(prefix="ece-bench-predict-") as folder:
        for size in sizes:
            disks = disk_centres(size, spacing=40, seed=size)
            slide = write_disk_slide(Path(folder) / f"slide_{size}.tif", size, disks, tile=256, levels=1)
            command = [sys.executable, "-m", "ece_lightning.bench.predict", str(slide), str(len(disks)), model,
                       str(width), device, precision, str(tile), str(batch_size), str(Path(folder) / f"out_{size}")]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"prediction of the {size} x {size} slide failed:\n{result.stderr[-3000:]}")
            rows.append(PredictBenchRow(**json.loads(result.stdout.strip().splitlines()[-1])))
            slide.unlink()
    return rows


if __name__ == "__main__":
    slide, expected, model, width, device, precision, tile, batch_size, output = sys.argv[1:]
    row = run_one(Path(slide), int(expected), model, int(width), device, precision, int(tile), int(batch_size),
                  Path(output))
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}))
