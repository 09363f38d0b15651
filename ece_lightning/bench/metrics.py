"""Cost of the segmentation metrics on one 1000 x 1000 instance map with hundreds of nuclei (a real
MoNuSeg annotation when ../shared/datasets holds it), against a straightforward per-instance AJI; and the
share of a training epoch that validation metrics take in a real run."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..metrics.core import aji_counts, dice_counts, matching_counts


def per_instance_aji(target: np.ndarray, pred: np.ndarray) -> tuple[int, int]:
    """AJI's (C, U) the straightforward way, as the MoNuSeg-era scripts compute it: for each ground-truth
    instance a full-image mask, and one for each prediction it overlaps. Slow; the reference for
    ``metrics.core.aji_counts`` (equal results, tested)."""
    pred_ids = [j for j in np.unique(pred) if j]
    used, intersection_sum, union_sum = set(), 0, 0
    for i in (i for i in np.unique(target) if i):
        truth = target == i
        best, best_iou, best_counts = None, 0.0, (0, 0)
        for j in np.unique(pred[truth]):
            if not j:
                continue
            candidate = pred == j
            inter = int(np.count_nonzero(truth & candidate))
            union = int(np.count_nonzero(truth | candidate))
            if inter / union > best_iou:  # ids ascend, so ties keep the lowest label (as aji_counts)
                best, best_iou, best_counts = j, inter / union, (inter, union)
        if best is None:
            union_sum += int(np.count_nonzero(truth))
        else:
            intersection_sum += best_counts[0]
            union_sum += best_counts[1]
            used.add(best)
    union_sum += sum(int(np.count_nonzero(pred == j)) for j in pred_ids if j not in used)
    return intersection_sum, union_sum


def perturbed_prediction(target: np.ndarray, seed: int = 0) -> np.ndarray:
    """A realistic imperfect prediction of ``target``: shifted by (2, -1) px, eroded by one pixel, 5% of
    the objects missed, pairs of neighbours merged where dilation joins them, and a few false positives."""
    rng = np.random.default_rng(seed)
    pred = np.roll(target, (2, -1), axis=(0, 1))
    pred = np.where(ndi.binary_erosion(pred > 0), pred, 0)
    ids = np.unique(pred[pred > 0])
    pred[np.isin(pred, rng.choice(ids, max(1, len(ids) // 20), replace=False))] = 0
    joined, _ = ndi.label(ndi.binary_dilation(pred > 0, iterations=1))
    merge = np.isin(joined, rng.choice(np.unique(joined[joined > 0]), max(1, len(ids) // 20), replace=False))
    pred = np.where(merge & (pred > 0), joined + pred.max(), pred)
    for k in range(10):
        y, x = rng.integers(10, target.shape[0] - 10), rng.integers(10, target.shape[1] - 10)
        pred[y - 4 : y + 4, x - 4 : x + 4] = pred.max() + 1 + k
    return pred


def synthetic_map(size: int = 1000, spacing: int = 37, seed: int = 0) -> np.ndarray:
    """A ``size`` x ``size`` instance map of jittered ellipses (radii 4-7 px) on a grid: 729 at the defaults."""
    rng = np.random.default_rng(seed)
    target = np.zeros((size, size), np.int32)
    yy, xx = np.mgrid[-7:8, -7:8]
    label = 0
    for cy in range(20, size, spacing):
        for cx in range(20, size, spacing):
            label += 1
            a, b = rng.uniform(4, 7, 2)
            y, x = cy + rng.integers(-5, 6), cx + rng.integers(-5, 6)
            region = target[max(y - 7, 0) : y + 8, max(x - 7, 0) : x + 8]
            disk = ((yy / a) ** 2 + (xx / b) ** 2 <= 1)[: region.shape[0], : region.shape[1]]
            region[disk] = label
    return target


def example_maps(datasets: Path | None = None) -> dict[str, np.ndarray]:
    """The maps measured: synthetic ellipses (729 instances) and, when ../shared/datasets holds MoNuSeg 2018,
    its densest training annotation rasterised (1000 x 1000)."""
    from ..data.paths import datasets_dir

    maps = {"synthetic ellipses": synthetic_map()}
    folder = (datasets or datasets_dir()) / "monuseg2018"
    annotations = sorted(folder.rglob("*.xml")) if folder.is_dir() else []
    if annotations:
        from ..data.readers.aperio import rasterise_polygons, read_aperio_polygons

        polygons = {path: read_aperio_polygons(path)[0] for path in annotations}
        densest = max(polygons, key=lambda path: len(polygons[path]))
        maps[f"MoNuSeg {densest.stem}"] = rasterise_polygons(polygons[densest], (1000, 1000))[0]
    return maps


@dataclass
class MetricTiming:
    name: str
    median_ms: float
    result: str


def _time(function, target: np.ndarray, pred: np.ndarray, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(target, pred)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), result


@dataclass
class MapTimings:
    name: str
    targets: int
    predictions: int
    rows: list[MetricTiming]


def bench_metrics(repeats: int = 5, naive_repeats: int = 1) -> list[MapTimings]:
    """Median time of Dice, AJI and F1@0.5 (ours) and of the per-instance AJI on each example map and its
    perturbed prediction. The two AJIs must agree (RuntimeError otherwise)."""
    results = []
    for name, target in example_maps().items():
        pred = perturbed_prediction(target)
        rows = []
        for label, function, runs in (
            ("Dice (counts)", dice_counts, repeats),
            ("AJI (contingency table)", aji_counts, repeats),
            ("F1@0.5 (contingency table + assignment)", matching_counts, repeats),  # IoU threshold 0.5
            ("AJI (per-instance masks)", per_instance_aji, naive_repeats),
        ):
            ms, result = _time(function, target, pred, runs)
            rows.append(MetricTiming(label, ms, str(result)))
        if rows[1].result != rows[3].result:
            raise RuntimeError(f"{name}: AJI counts disagree: contingency {rows[1].result}, "
                               f"per-instance {rows[3].result}")
        results.append(MapTimings(name, len(np.unique(target)) - 1, len(np.unique(pred)) - 1, rows))
    return results


#: the experiments whose validation cost is measured, by dataset
VALIDATION_EXPERIMENTS = {"synthetic": "demo", "cpm15": "cpm15_sparse"}


@dataclass
class ValidationShare:
    dataset: str
    experiment: str
    train_epoch_s: float
    validation_metrics_s: float
    validation_tiles: int

    @property
    def share(self) -> float:
        return self.validation_metrics_s / self.train_epoch_s


def validation_share(dataset: str, epochs: int = 3) -> ValidationShare:
    """Train ``epochs`` epochs of the dataset's experiment (``VALIDATION_EXPERIMENTS``, ECE at 30%) with
    validation after each, and compare the time spent in the validation metrics (post-processing into
    instances, Dice, AJI: ``update_metrics`` and ``compute``) with the time of a training epoch
    (median over epochs)."""
    import pytorch_lightning as pl
    from hydra import compose, initialize_config_dir

    from ..config import CONFIG_DIR
    from ..errors import DatasetError
    from ..runs.assembly import build_run

    if dataset not in VALIDATION_EXPERIMENTS:
        raise ValueError(f"dataset {dataset!r} is not one of {', '.join(VALIDATION_EXPERIMENTS)}")
    experiment = VALIDATION_EXPERIMENTS[dataset]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}", "loss=ece", "sparsity=0.3"])
    pl.seed_everything(0, verbose=False)
    module, datamodule = build_run(cfg)
    try:
        datamodule.setup("fit")
    except DatasetError as error:
        raise FileNotFoundError(str(error)) from None
    metric_seconds: list[float] = [0.0]

    def timed(function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                metric_seconds[0] += time.perf_counter() - start
        return wrapper

    original_compute = module.val_metrics.compute
    module.update_metrics = timed(module.update_metrics)  # called by validation_step
    module.val_metrics.compute = timed(original_compute)

    class EpochClock(pl.Callback):
        def __init__(self):
            self.train_s, self.validation_s, self.started = [], [], 0.0

        def on_train_epoch_start(self, trainer, pl_module):
            self.started = time.perf_counter()

        def on_validation_epoch_start(self, trainer, pl_module):
            if trainer.sanity_checking:
                return
            self.train_s.append(time.perf_counter() - self.started)
            metric_seconds[0] = 0.0

        def on_validation_end(self, trainer, pl_module):  # after the module's epoch end (compute)
            if not trainer.sanity_checking:
                self.validation_s.append(metric_seconds[0])

    clock = EpochClock()
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         check_val_every_n_epoch=1, callbacks=[clock])
    trainer.fit(module, datamodule=datamodule)
    return ValidationShare(dataset, experiment, statistics.median(clock.train_s), statistics.median(clock.validation_s),
                           len(datamodule.datasets["val"]))
