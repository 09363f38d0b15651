"""`ece-bench`: performance benchmarks that print ratios measured in one process.

    ece-bench loss [--shape N C H W] [--device cpu|cuda|all] [--repeats R]
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
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
