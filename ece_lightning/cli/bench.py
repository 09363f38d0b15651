"""`ece-bench`: performance benchmarks that print ratios measured in one process.

    ece-bench loss [--shape N C H W] [--device cpu|cuda|all] [--repeats R]
    ece-bench data [--dataset synthetic|cpm15] [--size 512] [--batches 8]
    ece-bench metrics [--repeats 5] [--validation synthetic cpm15]
    ece-bench train [--size 128] [--batch-size 8] [--width 16] [--loss ece] [--steps 20] [--repeats 8]
                    [--precision 32|bf16-mixed] [--channels-last] [--compile] [--device cpu|cuda]
                    [--workers 0] [--augment none|paper]
    ece-bench predict [--sizes 4096 16384] [--model threshold|unet] [--width 16] [--device cpu|cuda]
                      [--precision 32|bf16] [--tile 512] [--batch-size 8]
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
    print(f"(GPU anchor: {GPU_ANCHOR_IMG_S:.0f} img/s, U-Net 64 bf16 training on an H200 (README, Speed); one loader "
          "process, torch threads 1)")
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..bench.train import BARE, DYNAMICS, LIGHTNING, RESIDENT, TEACHER, TrainBenchSetup, bench_train

    try:
        setup = TrainBenchSetup(size=args.size, batch_size=args.batch_size, base_channels=args.width,
                                depth=args.depth, loss=args.loss, steps=args.steps, warmup=args.warmup,
                                precision=args.precision, channels_last=args.channels_last, compile=args.compile,
                                device=args.device, workers=args.workers, augment=args.augment)
    except ValueError as error:
        print(f"ece-bench: error: {error}", file=sys.stderr)
        return 2
    rows = {row.name: row for row in bench_train(setup, repeats=args.repeats)}
    print("| variant | step median (ms) | img/s | ratio to the bare loop |")
    print("|---|---|---|---|")
    for row in rows.values():
        print(f"| {row.name} | {row.step_ms:.1f} | {row.images_per_s:.1f} | {row.ratio_to_bare:.3f} |")
    print(f"LossDynamics overhead: {rows[DYNAMICS].step_ms / rows[LIGHTNING].step_ms:.3f}x the Lightning step")
    print(f"Self-training (EMA teacher forward + update, pseudo-labels every step): "
          f"{rows[TEACHER].step_ms / rows[LIGHTNING].step_ms:.3f}x the Lightning step")
    print(f"End to end: the Lightning step runs at {rows[RESIDENT].step_ms / rows[LIGHTNING].step_ms:.1%} of the "
          f"resident-batch ceiling ({rows[RESIDENT].step_ms / rows[BARE].step_ms:.1%} for the bare loop with loading)")
    where = torch.cuda.get_device_name() if setup.device == "cuda" else "CPU"
    loading = f"{setup.workers} loader processes" if setup.workers else "data in the main process"
    print(f"(U-Net width {setup.base_channels} depth {setup.depth}, batch {setup.batch_size}x3x{setup.size}x{setup.size}, "
          f"loss {setup.loss}, precision {setup.precision}, channels_last {setup.channels_last}, "
          f"compile {setup.compile}, {where}, synthetic data, augment {setup.augment}, {loading}; {setup.steps} "
          f"timed steps after {setup.warmup}, median of {args.repeats} rounds in rotated order; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads)")
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from ..bench.metrics import bench_metrics, validation_share

    print("| 1000x1000 map | instances (label / predicted) | metric | median (ms) | per-instance AJI time / this | counts |")
    print("|---|---|---|---|---|---|")
    for timings in bench_metrics(repeats=args.repeats):
        naive = timings.rows[-1].median_ms
        for row in timings.rows:
            print(f"| {timings.name} | {timings.targets} / {timings.predictions} | {row.name} | {row.median_ms:.1f} | "
                  f"{naive / row.median_ms:.1f} | {row.result} |")
    print("(predictions: the labels shifted, eroded, 5% missed, some merged, 10 false positives)")
    if args.validation:
        print()
        print("| dataset | experiment | training epoch (s) | validation metrics (s) | val tiles | share |")
        print("|---|---|---|---|---|---|")
        for dataset in args.validation:
            try:
                share = validation_share(dataset)
            except FileNotFoundError as error:
                print(f"| {dataset} | skipped: {error} | | | | |")
                continue
            print(f"| {share.dataset} | {share.experiment} | {share.train_epoch_s:.2f} | {share.validation_metrics_s:.2f} | "
                  f"{share.validation_tiles} | {share.share:.1%} |")
    print(f"(numpy {__import__('numpy').__version__}; torch {torch.__version__}, {torch.get_num_threads()} threads)")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ..bench.predict import bench_predict

    if args.device == "cuda" and not torch.cuda.is_available():
        print("ece-bench: error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    print("| image | model | device | precision | objects (expected) | wall (s) | MP/s | RSS before (MiB) | "
          "peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in bench_predict(args.sizes, args.model, args.width, args.device, args.precision, args.tile,
                             args.batch_size):
        expected = f" ({row.expected})" if row.expected is not None else ""
        print(f"| {row.size}x{row.size} | {row.model} | {row.device} | {row.precision} | {row.objects}{expected} | "
              f"{row.wall_s:.1f} | {row.megapixels_per_s:.2f} | {row.rss_before_mib:.0f} | {row.peak_rss_mib:.0f} |")
    print(f"(tiled pyramidal TIFF of disks, tile {args.tile}, overlap 64, batch {args.batch_size}; each size in a fresh "
          f"process; RSS before = after imports and model set-up; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)")
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
    metrics = commands.add_parser("metrics", help="Dice/AJI/F1 cost per 1000x1000 image; validation share of an epoch")
    metrics.add_argument("--repeats", type=int, default=5)
    metrics.add_argument("--validation", nargs="*", choices=["synthetic", "cpm15"], default=["synthetic", "cpm15"],
                         help="datasets whose validation-metric share of a training epoch is measured (none: skip)")
    metrics.set_defaults(run=_metrics)
    train = commands.add_parser("train", help="Lightning training step vs a bare PyTorch loop and its resident-batch "
                                              "ceiling (and LossDynamics' cost)")
    train.add_argument("--size", type=int, default=128, help="image side")
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--width", type=int, default=16, help="U-Net base channels")
    train.add_argument("--depth", type=int, default=4, help="U-Net depth")
    train.add_argument("--loss", default="ece", help="registry loss")
    train.add_argument("--steps", type=int, default=20, help="timed steps per round")
    train.add_argument("--warmup", type=int, default=4, help="untimed steps first")
    train.add_argument("--repeats", type=int, default=8,
                       help="rounds, each starting one variant later (median; 3 rounds scattered ratios by 10%%)")
    train.add_argument("--precision", default="32", help="32 or bf16-mixed (autocast in the bare loop)")
    train.add_argument("--channels-last", action="store_true", help="NHWC network and inputs in every variant")
    train.add_argument("--compile", action="store_true", help="torch.compile the network in every variant")
    train.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    train.add_argument("--workers", type=int, default=0, help="loader processes (0: data in the main process)")
    train.add_argument("--augment", choices=["none", "paper"], default="none", help="training augmentation pipeline")
    train.set_defaults(run=_train)
    predict = commands.add_parser("predict", help="tiled prediction: MP/s and peak memory as the image grows")
    predict.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384], help="square image sides")
    predict.add_argument("--model", choices=["threshold", "unet"], default="threshold",
                         help="threshold: a perfect pointwise model (pipeline cost, counts checked); unet: + a U-Net")
    predict.add_argument("--width", type=int, default=16, help="U-Net base channels (--model unet)")
    predict.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    predict.add_argument("--precision", choices=["32", "bf16"], default="32")
    predict.add_argument("--tile", type=int, default=512)
    predict.add_argument("--batch-size", type=int, default=8)
    predict.set_defaults(run=_predict)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
