"""Schedule study for the ECE loss: test Dice over training for CE and ECE variants (issue: ECE).

Runs `ece-train` once per (variant, sparsity) with the test-curve callback, then prints, per run, the
test Dice / foreground ratio after selected epochs, and writes `curves.csv` and `curves.png`.

    python experiments/ece_schedule_study.py --out outputs/ece_study --epochs 12 [--variants ce ece ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

VARIANTS: dict[str, list[str]] = {
    "ce": ["loss=ce"],
    "ece": ["loss=ece"],
    "ece_no_exclusion": ["loss=ece", "loss.exclusion=false"],
    "ece_no_context": ["loss=ece", "loss.annotation_margin=0"],
    "ece_rate_ramp": ["loss=ece", "loss.negative_rate={start:0.1,end:0.5,midpoint:0.5,width:0.05,unit:fraction}"],
    "ece_tau_ramp": ["loss=ece", "loss.exclusion_threshold={start:1.0,end:0.9,midpoint:0.1667,width:0.0,unit:fraction}"],
    "ece_margin": ["loss=ece", "loss.annotation_margin=3"],
    "ece_margin2": ["loss=ece", "loss.annotation_margin=2"],
    "ece_margin_no_exclusion": ["loss=ece", "loss.annotation_margin=3", "loss.exclusion=false"],
    "ece_margin_soft_ramp": [
        "loss=ece", "loss.annotation_margin=3", "loss.excluded_weight=0.1",
        "loss.negative_rate={start:0.1,end:1.0,midpoint:0.5,width:0.05,unit:fraction}",
    ],
    "reference_fraction": [
        "loss=ece_reference",
        "loss.exclusion_threshold={start:0.0,end:0.5,midpoint:0.1667,width:0.0333,unit:fraction}",
        "loss.negative_rate={start:0.0,end:0.5,midpoint:0.5,width:0.0333,unit:fraction}",
    ],
    "reference_epochs": ["loss=ece_reference"],
}


def run(out: Path, name: str, sparsity: float, epochs: int, extra: list[str]) -> Path:
    run_dir = out / f"{name}_s{sparsity}"
    if (run_dir / "metrics.json").exists():
        return run_dir
    command = [str(Path(sys.executable).parent / "ece-train"), "experiment=demo", "callbacks=test_curve",
               f"sparsity={sparsity}", f"trainer.max_epochs={epochs}", f"hydra.run.dir={run_dir}",
               *VARIANTS[name], *extra]
    print(" ".join(command[1:]), flush=True)
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode:
        sys.exit(f"run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return run_dir


def curve(run_dir: Path) -> pd.DataFrame:
    log = pd.read_csv(run_dir / "csv" / "metrics.csv")
    cols = [c for c in log.columns if c.startswith("test_curve/")]
    return log.dropna(subset=cols)[["epoch", *cols]].groupby("epoch").last().reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/ece_study"))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.3, 1.0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args()
    frames = []
    for name in args.variants:
        for sparsity in args.sparsity:
            frame = curve(run(args.out, name, sparsity, args.epochs, args.overrides))
            frame.insert(0, "sparsity", sparsity)
            frame.insert(0, "variant", name)
            frames.append(frame)
    curves = pd.concat(frames, ignore_index=True)
    curves.to_csv(args.out / "curves.csv", index=False)
    marks = sorted({args.epochs // 4 - 1, args.epochs // 2 - 1, 3 * args.epochs // 4 - 1, args.epochs - 1})
    table = curves[curves.epoch.isin(marks)].pivot_table(index=["variant", "sparsity"], columns="epoch",
                                                         values=["test_curve/dice", "test_curve/fg_ratio"])
    pd.set_option("display.width", 200)
    print(table.round(3).to_string())
    _plot(curves, args.out / "curves.png")


def _plot(curves: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (variant, sparsity), group in curves.groupby(["variant", "sparsity"]):
        style = "-" if sparsity < 1 else "--"
        axes[0].plot(group.epoch + 1, group["test_curve/dice"], style, label=f"{variant} @ {sparsity}")
        axes[1].plot(group.epoch + 1, group["test_curve/fg_ratio"], style, label=f"{variant} @ {sparsity}")
    axes[0].set_ylabel("test Dice")
    axes[1].set_ylabel("predicted / true foreground")
    axes[1].set_yscale("symlog", linthresh=1)
    axes[1].axhspan(0.5, 2.0, color="green", alpha=0.08)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
