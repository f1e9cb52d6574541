"""``cifar-bench bench``: its options, the run over every model named, and ``bench.json``."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import torch
from jsonargparse.typing import PositiveInt
from rich.console import Console

from cifar_bench.bench.baseline import study_device
from cifar_bench.bench.harness import evaluate_everything, package_cli
from cifar_bench.bench.measure import accuracy_check as measure_accuracy
from cifar_bench.bench.measure import bench_model, sweep
from cifar_bench.bench.roofline import MatmulPeaks
from cifar_bench.bench.tables import check_targets, print_tables
from cifar_bench.environment import machine
from cifar_bench.errors import CifarBenchError
from cifar_bench.reports.output import write_json

MODELS = ("mlp", "cnn", "cnn_bn_do", "vgg16_last2", "vgg16_last3", "vgg16_last5")


def bench(
    models: tuple[str, ...] = MODELS,
    data_dir: str = "data",
    download: bool = True,
    config_dir: str = "configs",
    out: str = "bench",
    repeats: PositiveInt = 3,
    steps: PositiveInt = 40,
    warmup: PositiveInt = 3,
    eval_images: PositiveInt = 1500,
    vgg_steps: PositiveInt = 5,
    vgg_warmup: PositiveInt = 2,
    vgg_eval_images: PositiveInt = 500,
    cache_steps: PositiveInt = 20,
    cache_val_size: PositiveInt = 500,
    weights: str = "none",
    batch_sizes: tuple[PositiveInt, ...] = (),
    threads: tuple[PositiveInt, ...] = (),
    levers: bool = False,
    sweep_models: tuple[str, ...] = ("mlp", "cnn", "cnn_bn_do"),
    evaluate_batch_size: PositiveInt = 1000,
    accuracy_check: bool = False,
    accuracy_model: str = "cnn_bn_do",
    accuracy_images: PositiveInt = 10_000,
    accuracy_epochs: PositiveInt = 3,
    fit_args: Sequence[str] = (),
    console: Console | None = None,
) -> dict:
    """Time the package against the study's plain loop, same networks, same machine; write bench.json.

    Args:
        models: models to time.
        data_dir: folder holding CIFAR-10 or an official archive.
        download: fetch CIFAR-10 when no copy is found.
        config_dir: folder of base.yaml and the model configs.
        out: where bench.json goes.
        repeats: repeats per measurement; figures are medians.
        steps: timed training steps per repeat, after the warm-up.
        warmup: untimed steps first.
        eval_images: timed evaluation images per repeat.
        vgg_steps: timed steps of full VGG16 runs and their baseline (up to a second each).
        vgg_warmup: untimed steps of full VGG16 runs first.
        vgg_eval_images: timed VGG16 evaluation images per repeat.
        cache_steps: timed steps with the VGG16 feature cache.
        cache_val_size: validation images of the cached VGG16 runs (all are encoded).
        weights: VGG16 weights: 'none' (same speed), 'imagenet' or a state dict file.
        batch_sizes: sweep: epoch time at these batch sizes, e.g. [64,256,1024].
        threads: sweep: epoch time with these thread counts, e.g. [1,2].
        levers: also time settings that differ in one lever (precision, memory format, fc6 fold, eval batch).
        sweep_models: models of the sweeps.
        evaluate_batch_size: batch of evaluate's 60,000-image inference (when cnn is timed).
        accuracy_check: also train fp32 and bf16-mixed on a subset and compare test accuracy.
        accuracy_model: model of the accuracy check.
        accuracy_images: training images of the accuracy check (a stratified subset).
        accuracy_epochs: epochs of the accuracy check.
        fit_args: arguments for every package run, given after --, e.g. -- --trainer.precision 32-true.

    Returns the results, as written to bench.json.
    """
    options = dict(locals())
    extra, console = options.pop("fit_args"), options.pop("console") or Console()
    args = SimpleNamespace(**{**options, "config_dir": Path(config_dir), "out": Path(out)})
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    named = [*args.models, *args.sweep_models, *([args.accuracy_model] if args.accuracy_check else [])]
    unknown = [name for name in named if not (args.config_dir / f"{name}.yaml").is_file()]
    if unknown:
        raise CifarBenchError(
            f"no config for {', '.join(unknown)} in {args.config_dir}: choose among {', '.join(MODELS)}"
        )
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
        results["evaluate"] = {
            "model": "cnn",
            **evaluate_everything(package_cli("cnn", args.config_dir, extra), args.evaluate_batch_size),
        }
    if args.batch_sizes or args.threads:
        results["sweeps"] = []
        for name in args.sweep_models:
            console.print(f"sweep: {name}, batch sizes {args.batch_sizes}, threads {args.threads}")
            results["sweeps"] += sweep(name, args, extra)
            gc.collect()
    if args.accuracy_check:
        results["accuracy_check"] = measure_accuracy(args, extra, console)
    results["targets"] = check_targets(results)
    results["seconds"] = time.perf_counter() - started
    write_json(args.out / "bench.json", results)
    print_tables(results, console)
    console.print(f"wrote {args.out / 'bench.json'} ({results['seconds']:.0f} s)")
    return results
