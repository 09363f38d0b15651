"""Where sparse-shot training loses, object by object: the trained runs of a benchmark sweep (chosen loss @ sparsity
entries, every seed) over their own test split, each true nucleus classed found / poor / split / merged / missed and
each prediction matched or spurious (``ece_lightning.analysis.diagnosis``); mean +- std over seeds, and an error
picture per entry (its first seed) of the same test image: ``--image``, or the one where the first entry errs most.

    python experiments/diagnose.py outputs/cpm15_benchmark --runs ce:1.0 ce:0.3 ece:0.1 ece:0.3 ece:0.6 ece:1.0 \
        --out experiments/results/cpm15_diagnosis

Writes ``<out>.md`` (the table) and ``<out>/<loss>_<sparsity>.jpg`` (the central ``--crop`` pixels of the
pictures: true nuclei found green, poor yellow, split orange, merged purple, missed blue; spurious predictions red;
predicted outlines white).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ece_lightning.analysis.diagnosis import diagnose_run
from ece_lightning.analysis.sweeps import values_cell
from ece_lightning.analysis.tables import markdown
from ece_lightning.io import atomic_save_image, atomic_write_text

COLUMNS = [("test/dice", "Dice"), ("test/aji", "AJI"), ("object_recall", "found (recall @0.5)"),
           ("touched_recall", "touched"), ("object_precision", "precision"), ("found_mean_iou", "IoU of found"),
           ("poor_fraction", "poor"), ("split_fraction", "split"), ("merged_fraction", "merged"),
           ("missed_fraction", "missed"), ("count_ratio", "predicted / true objects"),
           ("nucleus_median_probability", "median p(fg) on nuclei"), ("nucleus_above_half", "nucleus px > 0.5"),
           ("background_above_half", "background px > 0.5")]


def finished_runs(sweep: Path, loss: str, sparsity: float) -> list[Path]:
    runs = []
    for path in sorted(sweep.glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        if metrics.get("loss") == loss and float(metrics.get("sparsity", -1)) == sparsity \
                and (path.parent / "checkpoints" / "last.ckpt").is_file():
            runs.append(path.parent)
    return runs


def central(picture: np.ndarray, side: int) -> np.ndarray:
    top, left = max(0, (picture.shape[0] - side) // 2), max(0, (picture.shape[1] - side) // 2)
    return np.ascontiguousarray(picture[top:top + side, left:left + side])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="a benchmark sweep folder (ece-train -m ... hydra.sweep.dir)")
    parser.add_argument("--runs", nargs="+", default=["ce:1.0", "ce:0.3", "ece:0.3", "ece:1.0"],
                        help="loss:sparsity entries")
    parser.add_argument("--out", type=Path, required=True, help="table <out>.md, pictures under <out>/")
    parser.add_argument("--image", nargs="*", default=[],
                        help="test image id(s) to picture (default: the one with most errors of the first entry)")
    parser.add_argument("--crop", type=int, default=400, help="side of the central square the pictures keep")
    args = parser.parse_args(argv)
    rows, picture_ids = [], list(args.image)
    for entry in args.runs:
        loss, sparsity = entry.split(":")[0], float(entry.split(":")[1])
        runs = finished_runs(args.sweep, loss, sparsity)
        if not runs:
            print(f"{entry}: no finished run in {args.sweep}", file=sys.stderr)
            continue
        figures: dict[str, list[float]] = {key: [] for key, _ in COLUMNS}
        for run in runs:
            first_seed = run == runs[0]
            result = diagnose_run(run, pictures=int(first_seed and not picture_ids),
                                  picture_ids=picture_ids if first_seed else ())
            summary = result["summary"]
            for key, _ in COLUMNS:
                figures[key].append(summary[key])
            for image_id, picture in result["pictures"]:
                picture_ids = picture_ids or [image_id]
                atomic_save_image(args.out / f"{loss}_{sparsity:g}.jpg", central(picture, args.crop))
                print(f"{entry}: picture of {image_id} ({run.name})")
            print(f"{entry} {run.name}: " + ", ".join(f"{name} {summary[key]:.3f}" for key, name in COLUMNS))
        rows.append([f"{loss} @ {sparsity:.0%}", str(len(runs)), *(values_cell(figures[key]) for key, _ in COLUMNS)])
    table = markdown(["loss @ annotated", "seeds", *(name for _, name in COLUMNS)], rows)
    atomic_write_text(args.out.with_suffix(".md"), table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
