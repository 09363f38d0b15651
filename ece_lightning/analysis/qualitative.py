"""Predictions of trained runs side by side on the same test images (the paper's Figure 2): for
segmentation, true-positive foreground pixels green, false positives red, false negatives blue; for
detection, label boxes green and predicted boxes magenta."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

TP_COLOUR, FP_COLOUR, FN_COLOUR = (0, 200, 0), (230, 0, 0), (0, 90, 255)


def load_run(run_dir: str | Path, checkpoint: str = "last.ckpt") -> tuple[Any, Any]:
    """The trained module (eval mode, CPU) and the datamodule of a run folder, rebuilt from its
    ``.hydra/config.yaml`` and ``checkpoints/<checkpoint>``; dataset paths resolve from the directory
    the run was started in (``ECE_DATASETS`` still overrides)."""
    from ..runs.assembly import load_trained_run

    return load_trained_run(run_dir, checkpoint)


def error_overlay(image: np.ndarray, target: np.ndarray, prediction: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with foreground agreement painted over it: TP green, FP red, FN blue."""
    target, prediction = np.asarray(target) > 0, np.asarray(prediction) > 0
    if target.shape != prediction.shape or image.shape[:2] != target.shape:
        raise ValueError(f"image {image.shape[:2]}, target {target.shape} and prediction {prediction.shape} differ")
    out = image.astype(np.float32)
    for mask, colour in ((target & prediction, TP_COLOUR), (prediction & ~target, FP_COLOUR),
                         (target & ~prediction, FN_COLOUR)):
        out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(colour, np.float32)
    return out.round().astype(np.uint8)


def spread_indices(count: int, max_images: int) -> list[int]:
    """``max_images`` indices spread evenly over ``count`` items (test tiles come image by image, so the
    first few would all show one image)."""
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, min(max_images, count))}) if count else []


def predict_test_images(module: Any, datamodule: Any, max_images: int = 3,
                        indices: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Test tiles (``indices``, default ``max_images`` spread over the test set) with their labels and the
    module's prediction: ``image`` (H, W, 3) uint8, ``instances`` (labels), ``index``, and
    ``foreground``/``predicted_instances`` (segmentation) or ``boxes`` and ``label_boxes`` (detection)."""
    from ..data.targets import instance_boxes

    datamodule.setup("test")
    dataset = datamodule.datasets["test"]
    if indices is None:
        indices = spread_indices(len(dataset), max_images)
    bad = [i for i in indices if not 0 <= i < len(dataset)]
    if bad:
        raise IndexError(f"test tile index {bad[0]} out of range: the test set has {len(dataset)} tiles")
    samples = [dataset[i] for i in indices]
    images = torch.stack([s["image"] for s in samples])
    instances = torch.stack([torch.as_tensor(s["instances"]) for s in samples])
    with torch.no_grad():
        outputs = module(images)
    results = []
    for i in range(len(samples)):
        result = {"image": module.to_rgb(images[i]), "instances": instances[i].numpy(), "index": indices[i]}
        if hasattr(module, "segment"):
            foreground, predicted = module.segment(outputs[i : i + 1])
            result.update(foreground=foreground[0].numpy(), predicted_instances=predicted[0].numpy())
        else:
            detections = module.detect(outputs[i : i + 1], tuple(images.shape[-2:]))
            boxes, _ = instance_boxes(instances[i : i + 1])
            result.update(boxes=detections.of_image(0)[0].numpy(), label_boxes=boxes.numpy())
        results.append(result)
    return results


def pick_runs(frame: pd.DataFrame, root: str | Path, sparsity: float, losses: tuple[str, ...] = ("ce", "ece"),
              seed: int | None = None) -> dict[str, Path]:
    """Run folders of ``losses`` at ``sparsity`` (first seed unless given) from a ``load_sweep`` table."""
    runs = {}
    for loss in losses:
        match = frame[(frame["loss"] == loss) & np.isclose(frame["sparsity"], sparsity)]
        if seed is not None:
            match = match[match["seed"] == seed]
        if match.empty:
            available = sorted({(r.loss, r.sparsity) for r in frame.itertuples()})
            raise KeyError(f"no run of loss {loss!r} at sparsity {sparsity} under {root}; runs: {available}")
        runs[f"{loss} @ {sparsity:g}"] = Path(root) / match.iloc[0]["run_dir"]
    return runs


def compare_runs(runs: Mapping[str, str | Path], max_images: int = 3, indices: Sequence[int] | None = None):
    """Figure: one row per test tile (``indices``, default ``max_images`` spread over the test set); the
    tile with its label outlines, then each run's prediction (segmentation: TP/FP/FN colours and the
    tile's Dice; detection: label and predicted boxes). The runs must share their test set."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from ..drawing import draw_boxes, draw_outlines
    from ..metrics.core import dice_counts, dice_from_counts

    predictions = {label: predict_test_images(*load_run(path), max_images=max_images, indices=indices)
                   for label, path in runs.items()}
    first = next(iter(predictions.values()))
    fig, axes = plt.subplots(len(first), 1 + len(runs), figsize=(3.2 * (1 + len(runs)), 3.2 * len(first)),
                             squeeze=False)
    for row, sample_index in zip(axes, range(len(first))):
        sample = first[sample_index]
        row[0].imshow(draw_outlines(sample["image"], sample["instances"]))
        row[0].set_title(f"test tile {sample['index']} + label outlines", fontsize=9)
        for ax, (label, results) in zip(row[1:], predictions.items()):
            result = results[sample_index]
            if "foreground" in result:
                ax.imshow(error_overlay(result["image"], result["instances"], result["foreground"]))
                dice = dice_from_counts(*dice_counts(result["instances"], result["foreground"]))
                ax.set_title(f"{label}: Dice {dice:.3f}", fontsize=9)
            else:
                ax.imshow(draw_boxes(result["image"], result["label_boxes"], result["boxes"]))
                ax.set_title(f"{label}: {len(result['boxes'])} boxes / {len(result['label_boxes'])} labels", fontsize=9)
        for ax in row:
            ax.axis("off")
    legend = [Patch(color=np.array(c) / 255, label=name) for c, name in
              ((TP_COLOUR, "true positive"), (FP_COLOUR, "false positive"), (FN_COLOUR, "false negative"))]
    fig.legend(handles=legend, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig
