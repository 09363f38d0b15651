"""The detection score threshold chosen on sparse validation labels: the biased choice (F1 against the sparse labels
as if exhaustive) against the corrected one (``analysis.thresholds``: exclusive recall and tp / sparsity), each then
scored on the exhaustive validation labels (what the choice should have found) and on the test split (reported,
never used to choose), beside the fixed 0.5 and the best threshold on exhaustive validation labels (an oracle).

    python experiments/threshold_search.py /tmp/points/cpm15/*_s0.3_* --whole \
        --out experiments/results/points/cpm15_thresholds.md

Each run's validation labels are drawn as in its training (its sparsity and seed).
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
from ece_lightning.analysis.thresholds import choose_threshold, threshold_counts, threshold_table
from ece_lightning.io import atomic_write_text
from ece_lightning.runs.assembly import input_multiple, load_run_config
from ece_lightning.runs.evaluation import _datamodule, evaluation_images, load_checkpoint_module


def split_counts(module, run_dir: Path, split: str, sparsity: float, seed: int, whole: bool) -> pd.DataFrame:
    dataset_cfg = OmegaConf.to_container(load_run_config(run_dir).dataset, resolve=True)
    dataset_cfg.update(sparsity=sparsity, sparsify_seed=seed, **({"eval_tile": "whole"} if whole else {}))
    datamodule = _datamodule(dataset_cfg, seed, input_multiple(module) or 1)
    dataset, _ = evaluation_images(datamodule, split)
    return threshold_counts(module, dataset)


def f1_at(table: pd.DataFrame, threshold: float) -> float:
    return float(table.loc[(table["threshold"] - threshold).abs().idxmin(), "sparse_f1"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished detection run folders")
    parser.add_argument("--whole", action="store_true", help="evaluate whole images (dataset.eval_tile=whole)")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file (a CSV is written beside it)")
    args = parser.parse_args(argv)
    runs = [run for run in args.runs if (run / "metrics.json").is_file() and (run / "checkpoints").is_dir()]
    if not runs:
        print(f"no finished runs among {', '.join(map(str, args.runs))}", file=sys.stderr)
        return 2
    rows = []
    for run in runs:
        trained = json.loads((run / "metrics.json").read_text())
        sparsity, seed = float(trained["sparsity"]), int(trained["seed"])
        module = load_checkpoint_module(run / "checkpoints" / "last.ckpt")
        sparse = threshold_table(split_counts(module, run, "val", sparsity, seed, args.whole), sparsity)
        exhaustive = threshold_table(split_counts(module, run, "val", 1.0, seed, args.whole), 1.0)
        test = threshold_table(split_counts(module, run, "test", 1.0, seed, args.whole), 1.0)
        choices = {"fixed 0.5": 0.5, "sparse F1": choose_threshold(sparse, "sparse_f1"),
                   "corrected F1": choose_threshold(sparse, "corrected_f1"),
                   "oracle (exhaustive val)": choose_threshold(exhaustive, "sparse_f1")}
        labels = "points" if trained.get("labels") == "points" else "masks"
        for choice, threshold in choices.items():
            rows.append({"run": run.name, "loss": trained["loss"], "labels": labels, "sparsity": sparsity, "seed": seed,
                         "choice": choice, "threshold": threshold, "val_f1": f1_at(exhaustive, threshold),
                         "test_f1": f1_at(test, threshold)})
        print(f"{run.name}: " + ", ".join(f"{c} {t:.2f}" for c, t in choices.items()), flush=True)
    frame = pd.DataFrame(rows)
    atomic_write_text(args.out.with_suffix(".csv"), frame.to_csv(index=False))
    summary = []
    for (loss, labels, sparsity, choice), group in frame.groupby(["loss", "labels", "sparsity", "choice"], sort=False):
        summary.append([f"{loss} ({labels}) @ {sparsity:.0%}", choice, len(group), values_cell(group["threshold"]),
                        values_cell(group["val_f1"]), values_cell(group["test_f1"])])
    header = ["run", "threshold chosen by", "seeds", "threshold", "F1 exhaustive val", "F1 test"]
    text = (f"# Detection score threshold chosen on sparse validation labels\n\n`python experiments/threshold_search.py "
            f"{' '.join(r.name for r in runs)}{' --whole' if args.whole else ''}`: point F1 where a run scores it "
            "(`task.metrics.point_radius`), else box F1; mean ± std over seeds.\n\n" + markdown(header, summary) + "\n")
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
