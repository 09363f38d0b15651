"""Where box F1 is lost when point F1 is not: for detection runs, the test predictions paired one-to-one with
the label boxes by centre distance (within the run's point radius, as point F1 pairs them), then for those pairs
the IoU with the label box and the predicted-over-true box side (geometric mean of width and height). A pair below
IoU 0.5 is a nucleus found but boxed wrongly: box F1 counts it as a miss and a false positive.

    python experiments/box_quality.py /tmp/det/cpm15_detection/sweep/*_{ce_s1.0,ece_s0.3}_seed* \
        --out experiments/results/detection/cpm15_box_quality.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment
from torch.utils.data import DataLoader
from torchvision.ops import box_iou

from ece_lightning.analysis.sweeps import values_cell
from ece_lightning.analysis.tables import markdown
from ece_lightning.io import atomic_write_text
from ece_lightning.runs.assembly import load_trained_run
from ece_lightning.runs.evaluation import evaluation_images


def pairs(run: Path) -> pd.DataFrame:
    """One row per centre-matched (label, prediction) pair of the run's test split: IoU and side ratio."""
    module, datamodule = load_trained_run(run)
    dataset, _ = evaluation_images(datamodule, "test")
    radius = module.metrics_cfg["point_radius"] or 8.0
    rows = []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=1, shuffle=False):
            outputs, batch = module.crop_to_images(module(batch["image"]), batch)
            labels, _ = module.label_boxes(batch["instances"], batch)
            predicted = module.detect(outputs, tuple(batch["instances"].shape[-2:])).of_image(0)[0]
            if not len(labels) or not len(predicted):
                continue
            centre = lambda b: (b[:, :2] + b[:, 2:]) / 2  # noqa: E731
            distance = torch.cdist(centre(labels), centre(predicted)).numpy()
            cost = np.where(distance <= radius, distance, 1e6)
            label_rows, pred_rows = linear_sum_assignment(cost)
            keep = cost[label_rows, pred_rows] <= radius
            iou = box_iou(labels, predicted).numpy()
            sides = lambda b: torch.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).numpy()  # noqa: E731
            for i, j in zip(label_rows[keep], pred_rows[keep]):
                rows.append({"iou": float(iou[i, j]), "side_ratio": float(sides(predicted)[j] / sides(labels)[i])})
    return pd.DataFrame(rows)


def summary_row(run: Path, trained: dict) -> dict:
    """A run's pairs summarised: how many, the share below IoU 0.5, the median IoU and side ratio, the shares of
    boxes more than 20% too small or 25% too large, beside its test point F1 and box F1."""
    found = pairs(run)
    return {"run": run.name, "loss": trained["loss"], "sparsity": trained["sparsity"], "seed": trained["seed"],
            "pairs": len(found), "iou_below_0.5": float((found["iou"] < 0.5).mean()),
            "median_iou": float(found["iou"].median()), "median_side_ratio": float(found["side_ratio"].median()),
            "side_ratio_below_0.8": float((found["side_ratio"] < 0.8).mean()),
            "side_ratio_above_1.25": float((found["side_ratio"] > 1.25).mean()),
            "box_f1": trained.get("test/f1"), "point_f1": trained.get("test/point_f1")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished detection run folders")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file (a CSV is written beside it)")
    args = parser.parse_args(argv)
    finished = {run: json.loads((run / "metrics.json").read_text()) for run in args.runs
                if (run / "metrics.json").is_file()}
    if not finished:
        print(f"none of {', '.join(map(str, args.runs))} is a finished run", file=sys.stderr)
        return 2
    rows = []
    for run, trained in finished.items():
        rows.append(summary_row(run, trained))
        print(f"{run.name}: {rows[-1]}", flush=True)
    frame = pd.DataFrame(rows)
    atomic_write_text(args.out.with_suffix(".csv"), frame.to_csv(index=False))
    columns = ["pairs", "iou_below_0.5", "median_iou", "median_side_ratio", "side_ratio_below_0.8",
               "side_ratio_above_1.25", "point_f1", "box_f1"]
    summary = [[f"{loss} @ {sparsity:g}", len(group), *(values_cell(group[c]) for c in columns)]
               for (loss, sparsity), group in frame.groupby(["loss", "sparsity"], sort=False)]
    text = ("# Box quality of the nuclei a detector finds\n\n`python experiments/box_quality.py <run folders>` over "
            f"{len(finished)} runs (one row each in the CSV beside): test predictions paired with label boxes by centre "
            "distance (within the point radius); mean ± std over seeds of each run's count, share or median.\n\n"
            + markdown(["run", "seeds", *columns], summary) + "\n")
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
