"""Cross-dataset generalisation: every CPM-15-trained checkpoint of chosen (loss, sparsity) evaluated with `ece-eval`
on the MoNuSeg test split, and the reverse, beside each model's own test split; mean +- std over seeds.

    python experiments/cross_dataset.py outputs/cpm15_benchmark outputs/monuseg_benchmark \
        --runs ce:1.0 ece:0.3 --out experiments/results/cross_dataset.md

Each evaluation is `ece-eval checkpoint=<run>/checkpoints/last.ckpt dataset=<other> split=test`, with the image
split and `eval_tile` of the other benchmark's runs, so the other dataset's test images are those its own runs were
tested on (its folder under outputs/eval/); a finished evaluation is reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ece_lightning.analysis.sweeps import values_cell
from ece_lightning.analysis.tables import markdown
from ece_lightning.io import atomic_write_text


def runs_of(sweep: Path, wanted: list[tuple[str, float]]) -> list[dict]:
    runs = []
    for path in sorted(sweep.rglob("metrics.json")):
        if path.parent.parent.name == "eval" or "eval" in path.parts[-4:-1]:
            continue
        metrics = json.loads(path.read_text())
        if (metrics.get("loss"), float(metrics.get("sparsity", -1))) in wanted and (path.parent / "checkpoints").is_dir():
            runs.append({**metrics, "run_dir": path.parent})
    return runs


def benchmark_view(run_dir: Path) -> list[str]:
    """The ``dataset.*`` overrides that make ``dataset=<its name>`` the test split and tiling a benchmark run used
    (its image split and ``eval_tile``), from the run's composed config."""
    from omegaconf import OmegaConf

    dataset = OmegaConf.load(run_dir / ".hydra" / "config.yaml").dataset
    split = ",".join(f"{key}:{value}" for key, value in OmegaConf.to_container(dataset.split).items())
    return [f"dataset.split={{{split}}}", f"dataset.eval_tile={dataset.eval_tile}"]


def evaluate(run: dict, dataset: str, view: list[str], out_root: Path) -> dict:
    out = out_root / run["run_dir"].name / f"{dataset}-test"
    if not (out / "metrics.json").is_file():
        command = [str(Path(sys.executable).parent / "ece-eval"), f"checkpoint={run['run_dir'] / 'checkpoints' / 'last.ckpt'}",
                   f"dataset={dataset}", *view, "split=test", f"output={out}", "pictures=2"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return json.loads((out / "metrics.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", nargs="+", type=Path, help="benchmark sweep folders (one per training dataset)")
    parser.add_argument("--runs", nargs="+", default=["ce:1.0", "ece:0.3"], help="loss:sparsity entries to evaluate")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/cross_dataset.md"))
    parser.add_argument("--eval-root", type=Path, default=Path("outputs/eval/cross_dataset"))
    args = parser.parse_args(argv)
    wanted = [(entry.split(":")[0], float(entry.split(":")[1])) for entry in args.runs]
    runs = [run for sweep in args.sweeps for run in runs_of(sweep, wanted)]
    datasets = sorted({run["dataset"] for run in runs})
    # another dataset is evaluated on the test split of its own benchmark, as its own runs were
    views = {run["dataset"]: benchmark_view(run["run_dir"]) for run in runs}
    rows = []
    for trained_on in datasets:
        for loss, sparsity in wanted:
            group = [r for r in runs if r["dataset"] == trained_on and r["loss"] == loss and r["sparsity"] == sparsity]
            if not group:
                continue
            cells = []
            for evaluated_on in datasets:
                results = [r if evaluated_on == trained_on else evaluate(r, evaluated_on, views[evaluated_on],
                                                                          args.eval_root) for r in group]
                cells += [values_cell([m["test/dice"] for m in results]), values_cell([m["test/aji"] for m in results])]
            rows.append([trained_on, f"{loss} @ {sparsity:g}", str(len(group)), *cells])
    header = ["trained on", "loss @ sparsity", "seeds", *(f"{d} test {m}" for d in datasets for m in ("Dice", "AJI"))]
    table = markdown(header, rows)
    atomic_write_text(args.out, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
