"""`ece-bench`: performance benchmarks that print ratios measured in one process.

    ece-bench loss [--shape N C H W] [--device cpu|cuda|all] [--repeats R]
    ece-bench data [--dataset synthetic|cpm15] [--size 512] [--batches 8]
"""

from __future__ import annotations

import argparse
import sys

import torch

DEFAULT_SHAPES = {"cpu": (8, 2, 256, 256), "cuda": (16, 2, 512, 512)}


def _loss(args: argparse.Namespace) -> int:
    from ..bench.loss import bench_losses

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            print("ece-bench: error: --device cuda but no CUDA device is available", file=sys.stderr)
            return 2
        devices.remove("cuda")
    print("| device | shape | loss | fwd+bwd median (ms) | ratio to torch CE |")
    print("|---|---|---|---|---|")
    for device in devices:
        shape = tuple(args.shape) if args.shape else DEFAULT_SHAPES[device]
        for row in bench_losses(shape, device, repeats=args.repeats):
            print(f"| {row.device} | {'x'.join(map(str, row.shape))} | {row.name} | {row.median_ms:.2f} | "
                  f"{row.ratio_to_ce:.2f} |")
    print(f"(torch {torch.__version__}, {torch.get_num_threads()} CPU threads)")
    return 0


def _data(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from ..bench.data import GPU_ANCHOR_IMG_S, bench_data
    from ..config import CONFIG_DIR

    paper = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "augment" / "paper.yaml"))
    print("| dataset | pipeline | size | img/s per core | workers for the GPU anchor |")
    print("|---|---|---|---|---|")
    for augment in (None, paper):
        row = bench_data(args.dataset, args.size, args.batches, augment)
        print(f"| {row.dataset} | {row.augment} | {row.size} | {row.images_per_s:.1f} | {row.workers_for_gpu_anchor} |")
    print(f"(GPU anchor: {GPU_ANCHOR_IMG_S:.0f} img/s, REFERENCE.md; one loader process, torch threads 1)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ece-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    loss = commands.add_parser("loss", help="ECE and every registry loss vs torch CE, forward + backward")
    loss.add_argument("--shape", type=int, nargs=4, metavar=("N", "C", "H", "W"), default=None,
                      help="logit shape (default: 8 2 256 256 on CPU, 16 2 512 512 on CUDA)")
    loss.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    loss.add_argument("--repeats", type=int, default=20)
    loss.set_defaults(run=_loss)
    data = commands.add_parser("data", help="training data pipeline (crop + augmentation) images/s per core")
    data.add_argument("--dataset", choices=["synthetic", "cpm15"], default="synthetic")
    data.add_argument("--size", type=int, default=512)
    data.add_argument("--batches", type=int, default=8)
    data.set_defaults(run=_data)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
