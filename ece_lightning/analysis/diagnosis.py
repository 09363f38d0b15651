"""Where a segmentation loses against the labels, object by object: every true nucleus is found, poorly delineated,
split, merged with a neighbour or missed; every predicted object is a match, part of a split or merge, or
spurious. Pure numpy over instance maps, plus the loop over a trained run's test images and an overlay picture.

Classes of a true object t (predictions p overlapping it; ``cover(p, t)`` = |p n t| / |t|):
- ``missed``: no prediction overlaps it;
- ``split``: two or more predictions each cover at least ``part`` (20%) of it;
- ``merged``: its best-overlapping prediction also covers at least ``part`` of another true object;
- ``found``: its best prediction has IoU >= ``iou`` (0.5) with it (and it is neither split nor merged);
- ``poor``: overlapped, but at best with IoU < ``iou`` (a boundary problem: too small, too large, shifted).
A predicted object is ``spurious`` when it overlaps no true object (on an exhaustive test set: a false positive).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..instances import relabel_sequential
from ..metrics.core import overlaps

TRUE_CLASSES = ("found", "poor", "split", "merged", "missed")
COLOURS = {"found": (0, 190, 0), "poor": (255, 200, 0), "split": (255, 120, 0), "merged": (200, 0, 200),
           "missed": (0, 90, 255), "spurious": (230, 0, 0)}


def object_errors(target: np.ndarray, predicted: np.ndarray, iou: float = 0.5, part: float = 0.2
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per true object, per predicted object) tables of one image's instance maps (0 = background): label (of the
    maps renumbered 1..N in label order, ``instances.relabel_sequential``), area, best IoU, class (module
    docstring)."""
    table = overlaps(target, predicted)
    n_true, n_pred = len(table.target_area) - 1, len(table.pred_area) - 1
    pairs = pd.DataFrame({"t": table.target_index, "p": table.pred_index, "inter": table.intersection})
    pairs = pairs[(pairs.t > 0) & (pairs.p > 0)]
    pairs["iou"] = pairs.inter / (table.target_area[pairs.t] + table.pred_area[pairs.p] - pairs.inter)
    pairs["cover_t"] = pairs.inter / table.target_area[pairs.t]  # how much of the true object it covers
    covering = pairs[pairs.cover_t >= part]
    true_per_pred = covering.groupby("p").t.nunique()
    best = pairs.sort_values(["t", "iou"], ascending=[True, False]).drop_duplicates("t").set_index("t")
    splits = covering.groupby("t").p.nunique()
    rows = []
    for label in range(1, n_true + 1):
        if label not in best.index:
            kind, best_iou = "missed", 0.0
        else:
            best_iou = float(best.loc[label, "iou"])
            if splits.get(label, 0) >= 2:
                kind = "split"
            elif true_per_pred.get(int(best.loc[label, "p"]), 0) >= 2:
                kind = "merged"
            else:
                kind = "found" if best_iou >= iou else "poor"
        rows.append({"label": label, "area": int(table.target_area[label]), "best_iou": best_iou, "class": kind})
    truth = pd.DataFrame(rows, columns=["label", "area", "best_iou", "class"])
    overlapped = set(pairs.p)
    best_pred = pairs.sort_values(["p", "iou"], ascending=[True, False]).drop_duplicates("p").set_index("p")
    prediction = pd.DataFrame([{"label": label, "area": int(table.pred_area[label]),
                                "best_iou": float(best_pred.loc[label, "iou"]) if label in overlapped else 0.0,
                                "true_objects": int(true_per_pred.get(label, 0)),
                                "class": "spurious" if label not in overlapped else "overlapping"}
                               for label in range(1, n_pred + 1)],
                              columns=["label", "area", "best_iou", "true_objects", "class"])
    return truth, prediction


def summarise(truths: Iterable[pd.DataFrame], predictions: Iterable[pd.DataFrame]) -> dict[str, float]:
    """Object-level figures over images: the fraction of true objects in each class, object recall (found at IoU
    >= 0.5) and "touched" recall (any overlap), object precision (predictions that are not spurious), the mean IoU
    of found objects (boundary quality), and the counts of true and predicted objects."""
    truth = pd.concat(list(truths), ignore_index=True)
    prediction = pd.concat(list(predictions), ignore_index=True)
    count = max(len(truth), 1)
    summary = {f"{kind}_fraction": float((truth["class"] == kind).sum() / count) for kind in TRUE_CLASSES}
    summary.update({
        "true_objects": int(len(truth)), "predicted_objects": int(len(prediction)),
        "object_recall": summary["found_fraction"],
        "touched_recall": float((truth["class"] != "missed").sum() / count),
        "object_precision": float((prediction["class"] != "spurious").sum() / max(len(prediction), 1)),
        "found_mean_iou": float(truth.loc[truth["class"] == "found", "best_iou"].mean())
        if (truth["class"] == "found").any() else 0.0,
        "missed_median_area": float(truth.loc[truth["class"] == "missed", "area"].median())
        if (truth["class"] == "missed").any() else 0.0,
        "true_median_area": float(truth["area"].median()) if len(truth) else 0.0,
    })
    return summary


def error_picture(image: np.ndarray, target: np.ndarray, predicted: np.ndarray, truth: pd.DataFrame,
                  prediction: pd.DataFrame, alpha: float = 0.5) -> np.ndarray:
    """``image`` with every true object painted by its class (``COLOURS``), spurious predictions red, and the
    predicted outlines in white."""
    from skimage.segmentation import find_boundaries

    target, predicted = relabel_sequential(target), relabel_sequential(predicted)  # the tables' labels
    out = image.astype(np.float32)
    lookup = np.zeros((int(target.max()) + 1, 3), np.float32)
    painted = np.zeros(int(target.max()) + 1, bool)
    for row in truth.itertuples():
        lookup[row.label], painted[row.label] = COLOURS[row[4]], True
    mask = painted[target]
    out[mask] = (1 - alpha) * out[mask] + alpha * lookup[target][mask]
    spurious = np.isin(predicted, prediction.loc[prediction["class"] == "spurious", "label"].to_numpy())
    out[spurious] = (1 - alpha) * out[spurious] + alpha * np.asarray(COLOURS["spurious"], np.float32)
    out[find_boundaries(predicted, mode="inner") & (predicted > 0)] = 255
    return out.round().clip(0, 255).astype(np.uint8)


#: bins of the foreground-probability histograms over [0, 1]
PROBABILITY_BINS = 100


def probability_histogram(probabilities: np.ndarray) -> np.ndarray:
    """Counts of ``probabilities`` in ``PROBABILITY_BINS`` equal bins of [0, 1] (1.0 in the last)."""
    bins = np.minimum((np.asarray(probabilities, np.float64) * PROBABILITY_BINS).astype(np.int64), PROBABILITY_BINS - 1)
    return np.bincount(bins.ravel(), minlength=PROBABILITY_BINS)


def probability_summary(histograms: dict[str, np.ndarray]) -> dict[str, float]:
    """Per region (``nucleus``: pixels of true objects, ``background``): the median predicted foreground probability
    (to a bin) and the share above 0.5. A model that ranks nuclei well but keeps them below 0.5 (CE on sparse labels)
    shows a median far above the background's and a share near 0."""
    summary = {}
    for region, counts in histograms.items():
        total = max(int(counts.sum()), 1)
        median_bin = int(np.searchsorted(np.cumsum(counts), total / 2))
        summary[f"{region}_median_probability"] = (median_bin + 0.5) / PROBABILITY_BINS
        summary[f"{region}_above_half"] = float(counts[PROBABILITY_BINS // 2:].sum() / total)
    return summary


def diagnose(module: Any, dataset: Any, image_ids: list[str], pictures: int = 0,
             picture_ids: Iterable[str] = ()) -> dict[str, Any]:
    """Run a trained segmentation ``module`` over an evaluation ``dataset`` (``runs.evaluation.evaluation_images``)
    and classify every object: ``summary`` (``summarise`` and ``probability_summary``), ``truth`` and ``prediction`` tables with the image id
    of each object, and ``pictures``: (image id, error picture) of the ``pictures`` images with most errors, or of
    the images ``picture_ids`` names (to compare runs on the same images)."""
    chosen_ids = set(picture_ids)
    import torch

    truths, predictions, images = [], [], []
    histograms = {"nucleus": np.zeros(PROBABILITY_BINS, np.int64), "background": np.zeros(PROBABILITY_BINS, np.int64)}
    module.eval()
    with torch.no_grad():
        for item in range(len(dataset)):
            sample = dataset[item]
            batch = {key: torch.as_tensor(value)[None] for key, value in sample.items()}
            logits, batch = module.crop_to_images(module(batch["image"]), batch)
            _, instances = module.segment(logits)
            target, predicted = batch["instances"][0].numpy(), instances[0].numpy()
            foreground = logits.float().softmax(dim=1)[0, 1:].sum(dim=0).numpy()
            for region, mask in (("nucleus", target > 0), ("background", target == 0)):
                histograms[region] += probability_histogram(foreground[mask])
            truth, prediction = object_errors(target, predicted)
            image_id = image_ids[int(sample["index"])]
            truths.append(truth.assign(image=image_id))
            predictions.append(prediction.assign(image=image_id))
            if pictures or image_id in chosen_ids:
                height, width = target.shape
                rgb = module.to_rgb(batch["image"][0][:, :height, :width])
                errors = int((truth["class"] != "found").sum() + (prediction["class"] == "spurious").sum())
                images.append((errors, image_id, error_picture(rgb, target, predicted, truth, prediction)))
    chosen = [entry for entry in images if entry[1] in chosen_ids] if chosen_ids else \
        sorted(images, key=lambda entry: -entry[0])[:pictures]
    summary = {**summarise(truths, predictions), **probability_summary(histograms)}
    return {"summary": summary, "truth": pd.concat(truths, ignore_index=True),
            "prediction": pd.concat(predictions, ignore_index=True),
            "pictures": [(image_id, picture) for _, image_id, picture in chosen]}


def diagnose_run(run_dir: str | Path, split: str = "test", pictures: int = 0, picture_ids: Iterable[str] = ()
                 ) -> dict[str, Any]:
    """``diagnose`` of a finished segmentation run folder on its own ``split``, its ``summary`` extended with the
    run's ``test/dice``, ``test/aji`` (its ``metrics.json``) and ``count_ratio`` (predicted / true objects)."""
    import json

    from ..runs.assembly import load_trained_run
    from ..runs.evaluation import evaluation_images

    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    module, datamodule = load_trained_run(run_dir)
    dataset, image_ids = evaluation_images(datamodule, split)
    result = diagnose(module, dataset, image_ids, pictures=pictures, picture_ids=picture_ids)
    summary = result["summary"]
    summary.update({key: metrics[key] for key in ("test/dice", "test/aji") if key in metrics})
    summary["count_ratio"] = summary["predicted_objects"] / max(summary["true_objects"], 1)
    return result
