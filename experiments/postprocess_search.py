"""Instance post-processing chosen on validation data: every (method, min_size, min_distance) of a grid scored by
the AJI on the exhaustively annotated validation images of the chosen runs; the setting with the best mean is then
applied to their test images (reported, never used to choose), beside the trained setting.

    python experiments/postprocess_search.py outputs/cpm15_benchmark --runs ce:1.0 ece:0.3 pu:0.3 \
        --out experiments/results/sparse_methods/cpm15_postprocess.md

One setting per dataset for every loss, so the rows stay comparable. Validation labels are taken exhaustive
(sparsity 1.0): a user with sparse validation labels would choose on them instead (AJI against sparse labels
punishes every unannotated nucleus found), so the numbers say what tuning can gain, not how to tune blind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from cross_dataset import runs_of  # noqa: E402  (the sibling script: run as python experiments/...)
from omegaconf import OmegaConf

from ece_lightning.analysis.postprocess_search import (
    aji_of,
    best_setting,
    candidate_grid,
    foreground_samples,
    score_settings,
)
from ece_lightning.analysis.sweeps import values_cell
from ece_lightning.analysis.tables import markdown
from ece_lightning.io import atomic_write_text
from ece_lightning.runs.assembly import input_multiple, load_run_config
from ece_lightning.runs.evaluation import _datamodule, evaluation_images, load_checkpoint_module


def split_samples(run_dir: Path, split: str) -> tuple[object, list]:
    module = load_checkpoint_module(run_dir / "checkpoints" / "last.ckpt")
    dataset_cfg = OmegaConf.to_container(load_run_config(run_dir).dataset, resolve=True)
    dataset_cfg.update(sparsity=1.0)
    datamodule = _datamodule(dataset_cfg, 0, input_multiple(module) or 1)
    dataset, _ = evaluation_images(datamodule, split)
    return module, foreground_samples(module, dataset)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep folders of one dataset")
    parser.add_argument("--runs", nargs="+", default=["ce:1.0", "ece:0.3"], help="loss:sparsity entries")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file (a CSV is written beside it)")
    args = parser.parse_args(argv)
    wanted = [(entry.split(":")[0], float(entry.split(":")[1])) for entry in args.runs]
    runs = [run for sweep in args.sweeps for run in runs_of(sweep, wanted)]
    if not runs:
        print(f"no finished runs of {', '.join(args.runs)} under {', '.join(map(str, args.sweeps))}", file=sys.stderr)
        return 2
    grid = candidate_grid()
    val, test, trained = {}, {}, {}
    for run in runs:
        run["name"] = name = f"{run['run_dir'].parent.name}/{run['run_dir'].name}"
        module, val[name] = split_samples(run["run_dir"], "val")
        _, test[name] = split_samples(run["run_dir"], "test")
        trained[name] = dict(module.postprocess_cfg)
        print(f"{run['loss']} @ {run['sparsity']} seed {run['seed']}: {len(val[name])} val, {len(test[name])} test tiles")
    scores = score_settings(val, grid)
    chosen = best_setting(scores)
    keys = list(chosen)
    by_setting = scores.groupby(keys, sort=False)["aji"].agg(["mean", "std"]).reset_index()
    by_setting = by_setting.sort_values("mean", ascending=False)
    rows = []
    for (loss, sparsity) in wanted:
        group = [run for run in runs if (run["loss"], float(run["sparsity"])) == (loss, sparsity)]
        if not group:
            continue
        own = [aji_of(test[r["name"]], trained[r["name"]]) for r in group]
        tuned = [aji_of(test[r["name"]], chosen) for r in group]
        val_own = [aji_of(val[r["name"]], trained[r["name"]]) for r in group]
        val_tuned = scores[(scores["run"].isin([r["name"] for r in group]))
                           & (scores[keys] == pd.Series(chosen)).all(axis=1)]["aji"].tolist()
        rows.append({"loss @ annotated": f"{loss} @ {sparsity:.0%}", "seeds": len(group),
                     "val AJI, trained setting": values_cell(val_own), "val AJI, chosen": values_cell(val_tuned),
                     "test AJI, trained setting": values_cell(own), "test AJI, chosen": values_cell(tuned)})
    chosen_text = ", ".join(f"{key}={value}" for key, value in chosen.items())
    text = (f"# Post-processing chosen on validation AJI\n\nChosen (best mean validation AJI over the {len(runs)} runs): "
            f"**{chosen_text}**; trained setting: {trained[runs[0]['name']]}.\n\n"
            f"{markdown(list(rows[0]), [list(row.values()) for row in rows])}\n\n"
            "Every setting, validation AJI mean and std over the runs (best first):\n\n"
            f"{markdown(list(by_setting.columns), by_setting.head(12).itertuples(index=False))}\n")
    atomic_write_text(args.out, text)
    atomic_write_text(args.out.with_suffix(".csv"), scores.to_csv(index=False))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
