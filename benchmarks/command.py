"""``python -m benchmarks``: its options (``BenchSettings``), the run over every model named, and ``bench.json``."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from jsonargparse.typing import PositiveInt
from rich.console import Console

from benchmarks.baseline import study_device
from benchmarks.harness import evaluate_everything, package_cli, training_subset_copy
from benchmarks.measure import accuracy_check as measure_accuracy
from benchmarks.measure import bench_model, subset_folder, sweep
from benchmarks.roofline import MatmulPeaks, inference_flops_per_image
from benchmarks.tables import check_targets, print_tables
from cifar_bench.configs import CONFIG_DIR, model_names
from cifar_bench.environment import commit, machine
from cifar_bench.errors import CifarBenchError
from cifar_bench.output import output_location, place, write_json

MODELS = tuple(model_names())


@dataclass(frozen=True)
class BenchSettings:
    """Time the package against the study's plain loop, same networks, same machine; write bench.json.

    The options of ``python -m benchmarks``: its command line is built from these fields and their
    descriptions, so a default is stated once, here; bench.json records them under ``settings``.

    Args:
        models: models to time.
        data_dir: folder holding CIFAR-10 or an official archive.
        download: fetch CIFAR-10 when no copy is found.
        config_dir: folder of base.yaml and the model configs (default: the package's).
        out: where bench.json goes.
        repeats: repeats per measurement; figures are medians.
        steps: timed training steps per repeat, after the warm-up.
        warmup: untimed steps first.
        eval_images: timed evaluation images per repeat.
        vgg_steps: timed steps of full VGG16 runs and their baseline (up to a second each).
        vgg_warmup: untimed steps of full VGG16 runs first.
        vgg_eval_images: timed VGG16 evaluation images per repeat.
        store_steps: timed steps of VGG16 fed from its feature store.
        store_images: train the store-fed runs on a copy of the first N training images (a tenth held out; the copy
            kept in the feature_store folder), so that their store, built if missing, costs about N / 50,000 of a
            full build; None: the whole training set.
        feature_store: folder of the VGG16 feature stores the store-fed runs read (the trainings' own by
            default; a store missing there is built first, which takes minutes).
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
    """

    models: tuple[str, ...] = MODELS
    data_dir: str = "data"
    download: bool = True
    config_dir: str = str(CONFIG_DIR)
    out: str = "bench"
    repeats: PositiveInt = 3
    steps: PositiveInt = 40
    warmup: PositiveInt = 3
    eval_images: PositiveInt = 1500
    vgg_steps: PositiveInt = 5
    vgg_warmup: PositiveInt = 2
    vgg_eval_images: PositiveInt = 500
    store_steps: PositiveInt = 20
    feature_store: str = "feature_store"
    store_images: Optional[PositiveInt] = None
    weights: str = "none"
    batch_sizes: tuple[PositiveInt, ...] = ()
    threads: tuple[PositiveInt, ...] = ()
    levers: bool = False
    sweep_models: tuple[str, ...] = ("mlp", "cnn", "cnn_bn_do")
    evaluate_batch_size: PositiveInt = 1000
    accuracy_check: bool = False
    accuracy_model: str = "cnn_bn_do"
    accuracy_images: PositiveInt = 10_000
    accuracy_epochs: PositiveInt = 3
    fit_args: Sequence[str] = ()

    def named_models(self) -> list[str]:
        """Every model the settings name: timed, swept, and the accuracy check's."""
        return [*self.models, *self.sweep_models, *([self.accuracy_model] if self.accuracy_check else [])]

    def recorded(self) -> dict:
        """The settings as bench.json records them (the package-run arguments go under ``extra_args``)."""
        return {key: value for key, value in asdict(self).items() if key != "fit_args"}


def without_machine_paths(value, folder: Path):
    """``value`` with each absolute path in it (a string, or the value of a ``--option=PATH`` string) named as
    ``place`` names it, by its place under ``folder`` or its name: bench.json is committed as evidence, and
    names no folder of the machine it ran on."""
    if isinstance(value, dict):
        return {key: without_machine_paths(item, folder) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_machine_paths(item, folder) for item in value]
    if isinstance(value, str) and Path(value).is_absolute():
        return place(value, folder)
    if isinstance(value, str):
        option, equals, given = value.partition("=")  # a package-run argument may be --option=/a/path
        if equals and Path(given).is_absolute():
            return option + equals + place(given, folder)
    return value


def bench(settings: BenchSettings, console: Console | None = None) -> dict:
    """Time the package against the study's plain loop, same networks, same machine; write bench.json.

    Returns the results, as written to bench.json.
    """
    console = console or Console()
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    unknown = [name for name in settings.named_models() if not (Path(settings.config_dir) / f"{name}.yaml").is_file()]
    if unknown:
        raise CifarBenchError(
            f"no config for {', '.join(unknown)} in {settings.config_dir}: choose among {', '.join(MODELS)}"
        )
    extra = [
        "--data.data_dir",
        settings.data_dir,
        "--data.download",
        str(settings.download).lower(),
        *settings.fit_args,
    ]
    out = output_location(settings.out, folder=True)
    started = time.perf_counter()
    results: dict = {"machine": machine(), "commit": commit(), "settings": settings.recorded(), "extra_args": extra}
    console.print("matmul peak: fp32 and bf16")
    peaks = MatmulPeaks()
    for dtype in (torch.float32, torch.bfloat16):
        peaks.gflop_s(study_device(), dtype)
    if settings.store_images:
        training_subset_copy(settings.data_dir, settings.download, subset_folder(settings), settings.store_images)
    results["models"] = time_models(settings, extra, console, peaks)
    results["peaks"] = peaks.records()
    results |= further_measurements(settings, extra, console, peaks)
    results["targets"] = check_targets(results)
    results["seconds"] = time.perf_counter() - started
    results = without_machine_paths(results, Path.cwd())
    write_json(out / "bench.json", results)
    print_tables(results, console)
    console.print(f"wrote {out / 'bench.json'} ({results['seconds']:.0f} s)")
    return results


def time_models(settings: BenchSettings, extra: list[str], console: Console, peaks: MatmulPeaks) -> dict:
    """Every model's figures (``bench_model``), one model after the other."""
    models = {}
    for name in settings.models:
        load_before = os.getloadavg()[0]
        models[name] = bench_model(name, settings, extra, console, peaks)
        # Other processes on these cores slow multi-threaded steps far more than Python-bound ones.
        models[name]["load_average"] = [load_before, os.getloadavg()[0]]
        gc.collect()  # trainers and models refer to each other: free one model's gigabytes before the next
    return models


def further_measurements(settings: BenchSettings, extra: list[str], console: Console, peaks: MatmulPeaks) -> dict:
    """What the settings add to the models' figures: the 60,000-image evaluation, the sweeps, the accuracy check."""
    results: dict = {}
    if "cnn" in settings.models:
        console.print("evaluate: cnn over every image")
        cli = package_cli("cnn", settings.config_dir, extra)
        figures = evaluate_everything(cli, settings.evaluate_batch_size)
        flops, peak = inference_flops_per_image(cli.model.net), peaks.gflop_s(study_device(), torch.bfloat16)
        if str(cli.trainer.precision) != "bf16-mixed":
            peak = peaks.gflop_s(study_device(), torch.float32)
        achieved = flops * figures["images_per_s"] / 1e9
        results["evaluate"] = {
            "model": "cnn",
            **figures,
            "flops_per_image": flops,
            "gflop_s": achieved,
            "fraction_of_peak": achieved / peak,
        }
    if settings.batch_sizes or settings.threads:
        results["sweeps"] = []
        for name in settings.sweep_models:
            console.print(f"sweep: {name}, batch sizes {settings.batch_sizes}, threads {settings.threads}")
            results["sweeps"] += sweep(name, settings, extra)
            gc.collect()
    if settings.accuracy_check:
        results["accuracy_check"] = measure_accuracy(settings, extra, console)
    return results
