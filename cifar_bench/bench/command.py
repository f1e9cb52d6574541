"""``cifar-bench bench``: its options, the run over every model named, and ``bench.json``."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import time
from pathlib import Path

import torch
from rich.console import Console

from cifar_bench.bench.baseline import study_device
from cifar_bench.bench.harness import machine, package_cli, predict_everything
from cifar_bench.bench.measure import accuracy_check, bench_model, sweep
from cifar_bench.bench.roofline import MatmulPeaks
from cifar_bench.bench.tables import check_targets, output_console, print_tables
from cifar_bench.errors import CifarBenchError
from cifar_bench.reports.output import write_json

MODELS = ("mlp", "cnn", "cnn_bn_do", "vgg16_last2", "vgg16_last3", "vgg16_last5")


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cifar-bench bench",
        description="Training and evaluation speed of the package against the study's plain loop, same networks, same machine.",
        epilog="Arguments after -- go to every package run (e.g. -- --trainer.precision 32-true).",
    )
    p.add_argument("--models", nargs="+", default=list(MODELS), metavar="MODEL", help=f"models to time (default: all: {' '.join(MODELS)})")
    p.add_argument("--data_dir", default="data", help="folder holding CIFAR-10 or an official archive")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--config_dir", type=Path, default=Path("configs"), help="folder of base.yaml and the model configs")
    p.add_argument("--out", type=Path, default=Path("bench"), help="where bench.json goes")
    p.add_argument("--repeats", type=positive, default=3, help="repeats per measurement; figures are medians")
    p.add_argument("--steps", type=positive, default=40, help="timed training steps per repeat, after the warm-up")
    p.add_argument("--warmup", type=positive, default=3, help="untimed steps first")
    p.add_argument("--eval_images", type=positive, default=1500, help="timed evaluation images per repeat")
    p.add_argument("--vgg_steps", type=positive, default=5, help="timed steps of full VGG16 runs and their baseline (up to a second each)")
    p.add_argument("--vgg_warmup", type=positive, default=2, help="untimed steps of full VGG16 runs first")
    p.add_argument("--vgg_eval_images", type=positive, default=500, help="timed VGG16 evaluation images per repeat")
    p.add_argument("--cache_steps", type=positive, default=20, help="timed steps with the VGG16 feature cache")
    p.add_argument("--cache_val_size", type=positive, default=500, help="validation images of the cached VGG16 runs (all are encoded)")
    p.add_argument("--weights", default="none", help="VGG16 weights: 'none' (same speed), 'imagenet' or a state dict file")
    p.add_argument("--batch_sizes", type=int_list, default=[], help="sweep: epoch time at these batch sizes, e.g. 64,256,1024")
    p.add_argument("--threads", type=int_list, default=[], help="sweep: epoch time with these thread counts, e.g. 1,2")
    p.add_argument(
        "--levers", action="store_true", help="also time settings that differ in one lever (precision, memory format, fc6 fold, eval batch)"
    )
    p.add_argument("--sweep_models", nargs="+", default=["mlp", "cnn", "cnn_bn_do"], metavar="MODEL", help="models of the sweeps")
    p.add_argument("--evaluate_batch_size", type=positive, default=1000, help="batch of the 60,000-image prediction (when cnn is timed)")
    p.add_argument("--accuracy_check", action="store_true", help="also train fp32 and bf16-mixed on a subset and compare test accuracy")
    p.add_argument("--accuracy_model", default="cnn_bn_do", help="model of the accuracy check")
    p.add_argument("--accuracy_images", type=positive, default=10_000, help="training images of the accuracy check (a stratified subset)")
    p.add_argument("--accuracy_epochs", type=positive, default=3, help="epochs of the accuracy check")
    return p


def bench(args, extra: list[str], console: Console | None = None) -> dict:
    """Time every model named, write ``bench.json`` under ``args.out`` and print the tables; returns the results."""
    console = console or output_console()
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    named = [*args.models, *args.sweep_models, *([args.accuracy_model] if args.accuracy_check else [])]
    unknown = [name for name in named if not (args.config_dir / f"{name}.yaml").is_file()]
    if unknown:
        raise CifarBenchError(f"no config for {', '.join(unknown)} in {args.config_dir}: choose among {', '.join(MODELS)}")
    extra = ["--data.data_dir", args.data_dir, "--data.download", str(args.download).lower(), *extra]
    started = time.perf_counter()
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    results: dict = {"machine": machine(), "settings": settings, "extra_args": extra}
    console.print("matmul peak: fp32 and bf16")
    peaks = MatmulPeaks()
    for dtype in (torch.float32, torch.bfloat16):
        peaks.gflop_s(study_device(), dtype)
    results["models"] = {}
    for name in args.models:
        load_before = os.getloadavg()[0]
        results["models"][name] = bench_model(name, args, extra, console, peaks)
        # Other processes on these cores slow multi-threaded steps far more than Python-bound ones.
        results["models"][name]["load_average"] = [load_before, os.getloadavg()[0]]
        gc.collect()  # trainers and models refer to each other: free one model's gigabytes before the next
    results["peaks"] = peaks.records()
    if "cnn" in args.models:
        console.print("evaluate: cnn over every image")
        results["evaluate"] = {"model": "cnn", **predict_everything(package_cli("cnn", args.config_dir, extra), args.evaluate_batch_size)}
    if args.batch_sizes or args.threads:
        results["sweeps"] = []
        for name in args.sweep_models:
            console.print(f"sweep: {name}, batch sizes {args.batch_sizes}, threads {args.threads}")
            results["sweeps"] += sweep(name, args, extra)
            gc.collect()
    if args.accuracy_check:
        results["accuracy_check"] = accuracy_check(args, extra, console)
    results["targets"] = check_targets(results)
    results["seconds"] = time.perf_counter() - started
    write_json(args.out / "bench.json", results)
    print_tables(results, console)
    console.print(f"wrote {args.out / 'bench.json'} ({results['seconds']:.0f} s)")
    return results


def main(argv: list[str]) -> None:
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    bench(parser().parse_args(own), extra)
