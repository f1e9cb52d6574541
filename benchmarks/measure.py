"""What is timed for one model (package, its variants and levers, against the study's loop), and the sweeps.

Each repeat runs every arm of a model back to back (A B A B ...) and every figure is a median over repeats,
so ratios hold on a machine whose speed drifts (shared cores, thermal limits) even when absolute figures do not.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from benchmarks.baseline import study_device, study_eval, study_loader, study_network, study_train
from benchmarks.harness import (
    BASELINE_BATCH,
    QUIET_TRAINER,
    interleaved,
    package_cli,
    package_eval,
    package_train,
    plain_fast_loop,
    summary,
    threads,
)
from benchmarks.roofline import (
    MatmulPeaks,
    memory_floor_step_s,
    network_flops_per_image,
    package_flops_per_image,
    precision_dtype,
    roofline,
)
from cifar_bench.data import CIFAR10DataModule
from cifar_bench.features.feeding import store_key, stored_arrays
from cifar_bench.io import read_small_text
from cifar_bench.models import VGG16Classifier
from cifar_bench.training.lightning_cli import CifarBenchCLI


def epoch_images(datamodule: CIFAR10DataModule) -> int:
    """Training images per epoch under the config (the whole training split, whatever train_size a bench run uses)."""
    return len(datamodule.arrays.train_labels) - datamodule.hparams.val_size


UNCACHED = ["--model.init_args.feature_store", "null"]


def store_overrides(args) -> list[str]:
    """A VGG16 run fed from the feature store under ``args.feature_store`` (built there first if missing) in every
    epoch; with ``args.store_images``, trained from the subset copy ``subset_folder`` names, a tenth held out."""
    subset = []
    if args.store_images:
        subset = ["--data.data_dir", str(subset_folder(args)), "--data.val_size", str(args.store_images // 10)]
    # fresh_epochs 0: the arm's one-epoch fit would otherwise count as the config's last, fresh epochs and run the
    # whole network (what the package arm already times), as it did for vgg16_last3 and last5 until issue 36.
    return ["--model.init_args.feature_store", args.feature_store, "--model.init_args.fresh_epochs", "0", *subset]


def subset_folder(args) -> Path:
    """Where the copy of the training images the store-fed arms train from (``store_images``) is kept: beside the
    stores built from it, in the feature-store folder, not among the bench's results."""
    return Path(args.feature_store) / "bench_subsets" / f"first_{args.store_images}"


def train_budget(cli: CifarBenchCLI, args) -> tuple[int, int]:
    """(timed steps, warm-up steps): about as many images at any batch size; full VGG16 steps are dear, store-fed ones cheap."""
    hp, size = cli.model.hparams, cli.datamodule.hparams.batch_size
    if isinstance(cli.model, VGG16Classifier):
        return (
            (args.store_steps, args.warmup) if hp.feature_store and hp.fold_fc6 else (args.vgg_steps, args.vgg_warmup)
        )
    return max(3, args.steps * BASELINE_BATCH // size), max(1, args.warmup * BASELINE_BATCH // size)


def training_arm(
    cli: CifarBenchCLI, args, thread_count: int | None = None, with_callbacks: bool = True
) -> Callable[[], dict]:
    steps, warmup = train_budget(cli, args)

    def run() -> dict:
        with threads(thread_count):
            return package_train(cli, steps, warmup, with_callbacks)

    return run


def eval_batches(images: int, batch_size: int) -> int:
    return max(1, round(images / batch_size))


def lever_settings(name: str, args) -> dict[str, list[str]]:
    """Settings that differ from the shipped config in one lever, timed beside it."""
    if name == "cnn":
        nchw = ["--model.init_args.channels_last", "false"]
        precisions = {name: ["--trainer.precision", name] for name in ("32-true", "bf16-mixed")}
        return {
            "fp32, NCHW": [*precisions["32-true"], *nchw],
            "fp32, channels_last": precisions["32-true"],
            "bf16-mixed, NCHW": [*precisions["bf16-mixed"], *nchw],
            "bf16-mixed, channels_last": precisions["bf16-mixed"],
        }
    if name.startswith("vgg16"):
        unfolded = ["--model.init_args.fold_fc6", "false"]
        return {"fc6 unfolded": unfolded, "fc6 unfolded, store-fed": [*unfolded, *store_overrides(args)]}
    return {}


def bench_model(name: str, args, extra: list[str], console: Console, peaks: MatmulPeaks) -> dict:
    """Package (and its variants) against the study's loop for one model: training, then evaluation."""
    vgg = name.startswith("vgg16")
    # The package arm times the whole VGG16 network every step, the store-fed arm the layers after the store.
    extra = [*extra, "--model.init_args.weights", args.weights, *UNCACHED] if vgg else extra
    cli = package_cli(name, args.config_dir, extra)
    study_net = study_network(cli.model)
    arms, stored, levers = training_arms(name, cli, study_net, args, extra)
    console.print(f"[bold]{name}[/]: training ({', '.join(arms)}), {args.repeats} repeats")
    train = interleaved(arms, args.repeats)
    eval_arms, eval_batch_sizes = evaluation_arms(name, cli, study_net, args, extra)
    console.print(f"[bold]{name}[/]: evaluation ({', '.join(eval_arms)})")
    result = speed_figures(name, cli, train, interleaved(eval_arms, args.repeats), eval_batch_sizes)
    if stored is not None:
        add_store_figures(result, train["package_store_fed"], stored)
    add_rooflines(result, cli, study_net, stored.model if stored is not None else None, peaks)
    batch, per_epoch = cli.datamodule.hparams.batch_size, result["epoch_images"]
    if levers:
        result["levers"] = {label: summary(step_times(train[f"lever: {label}"]), batch, per_epoch) for label in levers}
    return result


def training_arms(name: str, cli: CifarBenchCLI, study_net: nn.Module, args, extra: list[str]):
    """The training arms of one model (the package; its store-fed run for VGG16, else the same fit with none of
    the config's callbacks and the bare loop; the levers; the study's loop), the store-fed run's CLI (None but
    for VGG16) and the levers' labels."""
    model, datamodule = cli.model, cli.datamodule
    steps, warmup = train_budget(cli, args)
    arms: dict[str, Callable] = {"package": training_arm(cli, args)}
    stored = None
    if name.startswith("vgg16"):
        stored = package_cli(name, args.config_dir, [*extra, *store_overrides(args)])
        arms["package_store_fed"] = training_arm(stored, args)
    else:
        arms["package_no_callbacks"] = training_arm(cli, args, with_callbacks=False)
        arms["plain_fast_loop"] = lambda: plain_fast_loop(cli, steps, warmup)
    levers = lever_settings(name, args) if args.levers else {}
    for label, overrides in levers.items():
        arms[f"lever: {label}"] = training_arm(package_cli(name, args.config_dir, [*extra, *overrides]), args)
    train_loader = study_loader(*datamodule.split("train"), model.transform_profile, train=True)
    hp = model.hparams
    arms["baseline"] = lambda: study_train(study_net, train_loader, hp.lr, hp.momentum, steps, warmup)
    return arms, stored, list(levers)


def evaluation_arms(name: str, cli: CifarBenchCLI, study_net: nn.Module, args, extra: list[str]):
    """The evaluation arms of one model (the package, at other eval batch sizes with the levers for cnn, and
    the study's loop) and the package arms' batch sizes."""
    images = args.vgg_eval_images if name.startswith("vgg16") else args.eval_images
    eval_clis = {"package": cli}
    if args.levers and name == "cnn":
        for size in (64, 1000):
            overrides = [*extra, "--data.eval_batch_size", str(size)]
            eval_clis[f"eval batch {size}"] = package_cli(name, args.config_dir, overrides)
    sizes = {label: c.datamodule.hparams.eval_batch_size for label, c in eval_clis.items()}
    arms: dict[str, Callable] = {
        label: (lambda c=c: package_eval(c, eval_batches(images, c.datamodule.hparams.eval_batch_size)))
        for label, c in eval_clis.items()
    }
    eval_loader = study_loader(*cli.datamodule.split("val"), cli.model.transform_profile, train=False)
    arms["baseline"] = lambda: study_eval(study_net, eval_loader, math.ceil(images / BASELINE_BATCH))
    return arms, sizes


def step_times(runs: list) -> list[float]:
    """Seconds per step of each repeat (a package run reports more than its step time)."""
    return [run["step_s"] if isinstance(run, dict) else run for run in runs]


def speed_figures(name: str, cli: CifarBenchCLI, train: dict, evaluation: dict, eval_batch_sizes: dict) -> dict:
    """Training and evaluation speeds of the package and the study's loop, and their ratios."""
    batch, per_epoch = cli.datamodule.hparams.batch_size, epoch_images(cli.datamodule)
    result = {
        "config": f"configs/{name}.yaml",
        "precision": str(cli.trainer.precision),
        "epoch_images": per_epoch,
        "package": summary(step_times(train["package"]), batch, per_epoch),
        "baseline": summary(train["baseline"], BASELINE_BATCH, per_epoch),
        "eval": {label: summary(evaluation[label], size, per_epoch) for label, size in eval_batch_sizes.items()}
        | {"baseline": summary(evaluation["baseline"], BASELINE_BATCH, per_epoch)},
    }
    result["ratios"] = {
        "train_images_per_s": result["package"]["images_per_s"] / result["baseline"]["images_per_s"],
        "epoch": result["baseline"]["epoch_s"] / result["package"]["epoch_s"],
        "eval_images_per_s": result["eval"]["package"]["images_per_s"] / result["eval"]["baseline"]["images_per_s"],
    }
    if "plain_fast_loop" in train:
        result["plain_fast_loop"] = summary(train["plain_fast_loop"], batch, per_epoch)
        result["lightning_overhead"] = 1 - result["plain_fast_loop"]["step_s"] / result["package"]["step_s"]
        # The overhead's parts: the config's callbacks, and Lightning's loop with the step timer alone.
        result["package_no_callbacks"] = summary(step_times(train["package_no_callbacks"]), batch, per_epoch)
        result["callbacks_overhead"] = 1 - result["package_no_callbacks"]["step_s"] / result["package"]["step_s"]
    return result


def add_store_figures(result: dict, store_fed_runs: list[dict], stored: CifarBenchCLI) -> None:
    """The store-fed VGG16 run's speed against the whole network's, and its store's build time and size."""
    batch, per_epoch = stored.datamodule.hparams.batch_size, result["epoch_images"]
    result["package_store_fed"] = summary(step_times(store_fed_runs), batch, per_epoch)
    key = store_key(stored.model, stored_arrays(stored.datamodule), str(stored.trainer.precision))
    folder = Path(stored.model.hparams.feature_store) / key.digest
    record = json.loads(read_small_text(folder / "store.json"))
    result["store"] = {
        "folder": str(folder),
        "views": key.views,
        "dtype": key.dtype,
        "precision": key.precision,
        "build_s": record.get("build_s"),
        "bytes": sum(path.stat().st_size for path in folder.glob("*.npy")),
    }
    store_fed = result["package_store_fed"]
    store_fed["memory_floor_step_s"] = memory_floor_step_s(stored.model, str(stored.trainer.precision))
    store_fed_epoch = store_fed["epoch_s"]
    result["ratios"]["store_fed_vs_uncached_epoch"] = result["package"]["epoch_s"] / store_fed_epoch
    result["ratios"]["store_fed_epoch_vs_baseline"] = result["baseline"]["epoch_s"] / store_fed_epoch


def add_rooflines(
    result: dict, cli: CifarBenchCLI, study_net: nn.Module, stored_model: VGG16Classifier | None, peaks: MatmulPeaks
) -> None:
    """Achieved GFLOP/s and fraction of the matching peak: the run's precision for the package, fp32 for the study's loop."""
    package_peak = peaks.gflop_s(cli.trainer.strategy.root_device, precision_dtype(result["precision"]))
    result["package"] |= roofline(result["package"], package_flops_per_image(cli.model), package_peak)
    if stored_model is not None:
        result["package_store_fed"] |= roofline(
            result["package_store_fed"], package_flops_per_image(stored_model), package_peak
        )
    result["baseline"] |= roofline(
        result["baseline"], network_flops_per_image(study_net), peaks.gflop_s(study_device(), torch.float32)
    )


# --- sweeps, accuracy, the 60,000-image evaluation -----------------------------------------------------
def sweep(name: str, args, extra: list[str]) -> list[dict]:
    """Package training speed at each batch size (default threads), and with each thread count (config batch size)."""
    default = package_cli(name, args.config_dir, extra)
    size, current = default.datamodule.hparams.batch_size, torch.get_num_threads()
    settings = {}
    for b in args.batch_sizes:
        settings[(b, current)] = training_arm(
            package_cli(name, args.config_dir, [*extra, "--data.batch_size", str(b)]), args
        )
    for count in args.threads:
        settings.setdefault((size, count), training_arm(default, args, count))
    runs = interleaved({f"batch {b}, threads {count}": arm for (b, count), arm in settings.items()}, args.repeats)
    per_epoch = epoch_images(default.datamodule)
    return [
        {"model": name, "threads": count, **summary([run["step_s"] for run in runs[key]], b, per_epoch)}
        for (b, count), key in zip(settings, runs)
    ]


def accuracy_check(args, extra: list[str], console: Console) -> dict:
    """Test accuracy of one model trained in fp32 and in bf16-mixed, same seed, same subset, same epochs."""
    results = {}
    for precision in ("32-true", "bf16-mixed"):
        console.print(
            f"accuracy check: {args.accuracy_model}, {precision}, {args.accuracy_epochs} epochs on {args.accuracy_images} images"
        )
        cli = package_cli(
            args.accuracy_model, args.config_dir, [*extra, "--data.train_size", str(args.accuracy_images)]
        )
        trainer = cli.instantiate_trainer(
            **QUIET_TRAINER, precision=precision, max_epochs=args.accuracy_epochs, limit_val_batches=0, callbacks=[]
        )
        start = time.perf_counter()
        trainer.fit(cli.model, datamodule=cli.datamodule)
        seconds = time.perf_counter() - start
        tested = trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
        results[precision] = {"test_acc": tested["test/acc"], "test_loss": tested["test/loss"], "fit_s": seconds}
    return {
        "model": args.accuracy_model,
        "train_images": args.accuracy_images,
        "epochs": args.accuracy_epochs,
        **results,
        "difference": results["bf16-mixed"]["test_acc"] - results["32-true"]["test_acc"],
    }
