"""Post-processing chosen on validation data: every (threshold, method, min_size, min_distance) of a grid scored by
the AJI on the exhaustively annotated validation images of the chosen runs; the setting with the best mean is then
applied to their test images (reported, never used to choose), beside the trained setting.

    python experiments/postprocess_search.py outputs/cpm15_benchmark --runs ce:1.0 ece:0.3 pu:0.3 \
        --out experiments/results/sparse_methods/cpm15_postprocess.md
    # the foreground probability threshold too, one choice per loss (each loss calibrates differently):
    python experiments/postprocess_search.py outputs/monuseg_benchmark --runs ce:1.0 pu:0.3 \
        --thresholds 0.4 0.5 0.6 0.7 --per-loss --out experiments/results/sparse_methods/monuseg_postprocess.md
    # test-time augmentation as one more dimension (each mode's margins computed once per run and split):
    python experiments/postprocess_search.py outputs/cpm15_benchmark --runs ce:1.0 pu_context:0.3 --tta flips dihedral \
        --out cpm15_tta.md

Without ``--per-loss`` one setting per dataset serves every loss, so the rows stay comparable; with it each
(loss, sparsity) gets the best setting of its own runs (``task.postprocess`` of that recipe). Validation labels are
taken exhaustive (sparsity 1.0): a user with sparse validation labels would choose on them instead (AJI against
sparse labels punishes every unannotated nucleus found), so the numbers say what tuning can gain, not how to tune
blind.
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
    scores_of,
)
from ece_lightning.analysis.sweeps import values_cell
from ece_lightning.analysis.tables import markdown
from ece_lightning.inference.tta import TTA_MODES
from ece_lightning.io import atomic_write_text
from ece_lightning.runs.assembly import input_multiple, load_run_config
from ece_lightning.runs.evaluation import _datamodule, evaluation_images, load_checkpoint_module


def run_samples(run_dir: Path, modes: list[str]) -> tuple[dict, dict[tuple[str, str], list]]:
    """The run's trained post-processing and the foreground samples of its val and test images under each
    test-time augmentation mode: the checkpoint and the data are read once."""
    module = load_checkpoint_module(run_dir / "checkpoints" / "last.ckpt")
    trained = dict(module.postprocess_cfg)
    dataset_cfg = OmegaConf.to_container(load_run_config(run_dir).dataset, resolve=True)
    dataset_cfg.update(sparsity=1.0)
    datamodule = _datamodule(dataset_cfg, 0, input_multiple(module) or 1)
    samples = {}
    for split in ("val", "test"):
        dataset, _ = evaluation_images(datamodule, split)
        for mode in modes:
            module.override_postprocess({"tta": mode})  # the foreground margins of the averaged copies
            samples[split, mode] = foreground_samples(module, dataset)
    return trained, samples


def _setting_text(setting: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in setting.items())


def _rows_for(setting_rows: pd.DataFrame, names: list[str], setting: dict) -> pd.DataFrame:
    mask = setting_rows["run"].isin(names)
    for key, value in setting.items():
        mask &= setting_rows[key] == value
    return setting_rows[mask]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep folders of one dataset")
    parser.add_argument("--runs", nargs="+", default=["ce:1.0", "ece:0.3"], help="loss:sparsity entries")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file (a CSV is written beside it)")
    parser.add_argument("--thresholds", nargs="+", type=float, default=None,
                        help="foreground probability thresholds to try (default: the trained 0.5 only)")
    parser.add_argument("--methods", nargs="+", default=["watershed", "components"])
    parser.add_argument("--min-distances", nargs="+", type=int, default=[4, 6, 8, 10, 12])
    parser.add_argument("--min-sizes", nargs="+", type=int, default=[0, 10, 20, 40])
    parser.add_argument("--per-loss", action="store_true", help="choose a setting per loss:sparsity entry")
    parser.add_argument("--tta", nargs="+", default=["none"], choices=TTA_MODES,
                        help="test-time augmentation modes to try (postprocess.tta; none is always among them)")
    args = parser.parse_args(argv)
    modes = ["none", *(mode for mode in args.tta if mode != "none")]
    wanted = [(entry.split(":")[0], float(entry.split(":")[1])) for entry in args.runs]
    runs = [run for sweep in args.sweeps for run in runs_of(sweep, wanted)]
    if not runs:
        print(f"no finished runs of {', '.join(args.runs)} under {', '.join(map(str, args.sweeps))}", file=sys.stderr)
        return 2
    grid = candidate_grid(args.methods, args.min_distances, args.min_sizes, thresholds=args.thresholds)
    val, test, trained = {mode: {} for mode in modes}, {mode: {} for mode in modes}, {}
    for run in runs:
        run["name"] = name = f"{run['run_dir'].parent.name}/{run['run_dir'].name}"
        trained[name], samples = run_samples(run["run_dir"], modes)
        for mode in modes:
            val[mode][name], test[mode][name] = samples["val", mode], samples["test", mode]
        print(f"{run['loss']} @ {run['sparsity']} seed {run['seed']}: {len(val['none'][name])} val, "
              f"{len(test['none'][name])} test tiles")
    scores = pd.concat([score_settings(val[mode], grid).assign(**({"tta": mode} if len(modes) > 1 else {}))
                        for mode in modes], ignore_index=True)
    shared = best_setting(scores)
    keys = list(shared)
    rows = []
    for (loss, sparsity) in wanted:
        group = [run["name"] for run in runs if (run["loss"], float(run["sparsity"])) == (loss, sparsity)]
        if not group:
            continue
        chosen = best_setting(scores[scores["run"].isin(group)]) if args.per_loss else shared
        tuned = chosen.get("tta", "none")
        own_test = [scores_of(test[trained[name].get("tta", "none")][name], trained[name]) for name in group]
        tuned_test = [scores_of(test[tuned][name], chosen) for name in group]
        val_own = [aji_of(val[trained[name].get("tta", "none")][name], trained[name]) for name in group]
        val_tuned = _rows_for(scores, group, chosen)["aji"].tolist()
        rows.append({"loss @ annotated": f"{loss} @ {sparsity:.0%}", "seeds": len(group),
                     **({"chosen": _setting_text(chosen)} if args.per_loss else {}),
                     "val AJI, trained setting": values_cell(val_own), "val AJI, chosen": values_cell(val_tuned),
                     "test AJI, trained setting": values_cell([r["aji"] for r in own_test]),
                     "test AJI, chosen": values_cell([r["aji"] for r in tuned_test]),
                     "test Dice, trained setting": values_cell([r["dice"] for r in own_test]),
                     "test Dice, chosen": values_cell([r["dice"] for r in tuned_test])})
    by_setting = scores.groupby(keys, sort=False)[["aji", "dice"]].agg(["mean", "std"]).reset_index()
    by_setting.columns = [" ".join(part for part in column if part) if isinstance(column, tuple) else column
                          for column in by_setting.columns]
    by_setting = by_setting.sort_values("aji mean", ascending=False).round(3)
    choice = ("Chosen per loss (best mean validation AJI over each entry's runs), in the table" if args.per_loss else
              f"Chosen (best mean validation AJI over the {len(runs)} runs): **{_setting_text(shared)}**")
    text = (f"# Post-processing chosen on validation AJI\n\n{choice}; trained setting: {trained[runs[0]['name']]}.\n\n"
            f"{markdown(list(rows[0]), [list(row.values()) for row in rows])}\n\n"
            "Every setting over all the runs, validation AJI and Dice, mean and std (best AJI first):\n\n"
            f"{markdown(list(by_setting.columns), by_setting.head(12).itertuples(index=False))}\n")
    atomic_write_text(args.out, text)
    atomic_write_text(args.out.with_suffix(".csv"), scores.to_csv(index=False))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
