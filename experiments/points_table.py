"""Point-trained against mask-trained detection: test point F1 (mean ± std over seeds) of the runs of
`experiment=cpm15_points` / `monuseg_points` sweeps, per dataset, loss and sparsity, with the gap; and the
mask-trained objectness losses side by side (box F1, precision, recall, point F1, each against CE at 100%).

    python experiments/points_table.py /tmp/points/cpm15 /tmp/points/monuseg --evaluation eval_whole \
        --out experiments/results/points/points_vs_masks.md

``--evaluation NAME``: read each run's ``NAME/metrics.json`` (an ``ece-eval`` of it, e.g. on whole images) where it
exists instead of the run's own test metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from ece_lightning.analysis.sweeps import values_cell
from ece_lightning.analysis.tables import markdown
from ece_lightning.io import atomic_write_text

METRICS = ("test/point_f1", "test/point_precision", "test/point_recall", "test/count_ratio", "test/f1", "test/precision",
           "test/recall")


def rows_of(sweep: Path, evaluation: str | None) -> list[dict]:
    rows = []
    for path in sorted(sweep.glob("*/metrics.json")):
        trained = json.loads(path.read_text())
        evaluated = path.parent / evaluation / "metrics.json" if evaluation else None
        scored = json.loads(evaluated.read_text()) if evaluated and evaluated.is_file() else trained
        points = OmegaConf.load(path.parent / ".hydra" / "config.yaml").dataset.get("point_labels")
        rows.append({"sweep": sweep.name, "dataset": trained["dataset"], "loss": trained["loss"],
                     "sparsity": float(trained["sparsity"]),
                     "seed": int(trained["seed"]), "labels": trained.get("labels", "masks"),
                     "box_size": points.get("box_size") if points is not None else None,
                     "scored_on": evaluation if scored is not trained else "run test",
                     **{key: scored.get(key) for key in METRICS}})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--evaluation", default=None, help="sub-folder of an ece-eval of each run to score instead")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file (a CSV is written beside it)")
    args = parser.parse_args(argv)
    frame = pd.DataFrame([row for sweep in args.sweeps for row in rows_of(sweep, args.evaluation)])
    if frame.empty:
        print(f"no finished runs under {', '.join(map(str, args.sweeps))}", file=sys.stderr)
        return 2
    atomic_write_text(args.out.with_suffix(".csv"), frame.to_csv(index=False))
    table = []
    for (dataset, loss, sparsity), group in frame.groupby(["dataset", "loss", "sparsity"], sort=True):
        masks = group[group["labels"] == "masks"]
        trained_on_points = group[group["labels"] == "points"]
        for box_size, points in trained_on_points.groupby("box_size", sort=True):
            gap = points["test/point_f1"].mean() - masks["test/point_f1"].mean()
            table.append([dataset, f"{loss} @ {sparsity:.0%}", f"{box_size:g}", f"{len(masks)} / {len(points)}",
                          values_cell(masks["test/point_f1"]), values_cell(points["test/point_f1"]), f"{gap:+.3f}",
                          values_cell(masks["test/point_recall"]), values_cell(points["test/point_recall"]),
                          values_cell(masks["test/count_ratio"]), values_cell(points["test/count_ratio"])])
    header = ["dataset", "loss @ annotated", "nominal box (px)", "seeds (masks / points)", "point F1 masks",
              "point F1 points", "gap", "recall masks", "recall points", "count ratio masks", "count ratio points"]
    methods = []
    masks = frame[frame["labels"] == "masks"]
    for (dataset, loss, sparsity, sweep), group in masks.groupby(["dataset", "loss", "sparsity", "sweep"], sort=True):
        full = masks[(masks["dataset"] == dataset) & (masks["loss"] == "ce") & (masks["sparsity"] == 1.0)]
        ratio = group["test/f1"].mean() / full["test/f1"].mean() if len(full) else float("nan")
        methods.append([dataset, f"{loss} @ {sparsity:.0%}", sweep, len(group), values_cell(group["test/f1"]),
                        f"{ratio:.2f}", values_cell(group["test/precision"]), values_cell(group["test/recall"]),
                        values_cell(group["test/point_f1"]), values_cell(group["test/count_ratio"])])
    methods_header = ["dataset", "objectness loss @ annotated", "sweep", "seeds", "F1 (IoU 0.5)", "F1 / CE@100%", "precision",
                      "recall", "point F1", "count ratio"]
    command = (f"`python experiments/points_table.py {' '.join(map(str, args.sweeps))}"
               f"{' --evaluation ' + args.evaluation if args.evaluation else ''}`")
    text = ("# Detection trained from points against the same nuclei's masks\n\n"
            f"{command}: test point F1 within the recipes' radius (8 px) on the exhaustive test masks, mean ± std "
            "over seeds.\n\n" + markdown(header, table) + "\n\n# Objectness losses, trained on masks\n\n"
            "The same runs and sweeps, mask-trained only: box F1 at IoU 0.5 on the exhaustive test masks.\n\n"
            + markdown(methods_header, methods) + "\n")
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
