"""``cifar-bench bench``: how fast the package trains and evaluates, against the study's plain loop.

The package path is the product itself: configs/base.yaml and configs/<model>.yaml through
CifarBenchCLI, so DataModule, model, precision and Trainer are those of ``cifar-bench fit``. The
baseline is the study's notebook loop on the same network: a DataLoader over PIL images with
per-image torchvision transforms, fp32, NCHW, the default SGD, batch 64. Each repeat runs every arm
of a model back to back (A B A B ...) and every figure is a median over repeats, so ratios hold on a
machine whose speed drifts (shared cores, thermal limits) even when absolute figures do not.

Speeds are timed between the ends of consecutive steps after a warm-up, so they include fetching,
augmentation, the step itself and whatever runs between steps; an epoch is steps per epoch times the
median step time.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_lightning.callbacks import Callback
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from cifar_bench.lightning_cli import CifarBenchCLI
from cifar_bench.data import CIFAR10DataModule
from cifar_bench.data.augment import TransformProfile, prepare_batch
from cifar_bench.errors import CifarBenchError
from cifar_bench.models import CifarClassifier, VGG16Classifier
from cifar_bench.reports.output import write_json

MODELS = ("mlp", "cnn", "cnn_bn_do", "vgg16_last2", "vgg16_last3", "vgg16_last5")
BASELINE_BATCH = 64
# Keys a model may have that change how it computes (not what): the baseline runs without them.
FAST_PATH_OPTIONS = {"fold_fc6": False, "channels_last": False, "cache_features": False}
QUIET_TRAINER = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
}


# --- what runs where -------------------------------------------------------------------------------
def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def machine() -> dict:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "huge_pages": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "platform": platform.platform(),
    }


@contextmanager
def threads(count: int | None):
    """Run the block with ``count`` intra-op threads (None: leave as is)."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def stamp(device: torch.device) -> float:
    """Now, once the device has finished its queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def seconds_per_step(stamps: list[float], warmup: int) -> float:
    """Mean step time from the end of the warm-up to the last stamp."""
    if len(stamps) <= warmup:
        raise CifarBenchError(f"only {len(stamps)} steps ran, {warmup} of them warm-up: use fewer warm-up steps or more data")
    return (stamps[-1] - stamps[warmup - 1]) / (len(stamps) - warmup)


def init_arguments(hparams) -> dict:
    """The constructor arguments saved in ``hparams``, without the entries jsonargparse adds (``_class_path``...)."""
    return {key: value for key, value in hparams.items() if not key.startswith("_")}


class StepTimer(Callback):
    """Stamps the end of every batch, and the fit's start and its training start (the span between holds a cache build)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.fit_start = self.train_start = math.nan

    def on_fit_start(self, trainer, pl_module) -> None:
        self.fit_start = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self.train_start = stamp(pl_module.device)

    def _stamp(self, trainer, pl_module, *args, **kwargs) -> None:
        self.stamps.append(stamp(pl_module.device))

    on_train_batch_end = on_validation_batch_end = on_predict_batch_end = _stamp


# --- the package's path ----------------------------------------------------------------------------
def package_cli(name: str, config_dir: Path, extra: Iterable[str]) -> CifarBenchCLI:
    """Model and DataModule exactly as ``cifar-bench fit --config base.yaml --config <name>.yaml [extra]`` builds them."""
    args = ["--config", str(config_dir / "base.yaml"), "--config", str(config_dir / f"{name}.yaml"), "--trainer.logger", "false", *extra]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python")
        cli = CifarBenchCLI(CifarClassifier, CIFAR10DataModule, subclass_mode_model=True, run=False, args=args, save_config_callback=None)
    cli.datamodule.setup("fit")
    return cli


def package_train(cli: CifarBenchCLI, steps: int, warmup: int) -> dict:
    """``trainer.fit`` for warm-up + steps batches, no validation: seconds per step, and fit start to first step."""
    timer = StepTimer()
    trainer = cli.instantiate_trainer(
        **QUIET_TRAINER, max_epochs=1, limit_train_batches=warmup + steps, limit_val_batches=0, callbacks=[timer]
    )
    trainer.fit(cli.model, datamodule=cli.datamodule)
    return {"step_s": seconds_per_step(timer.stamps, warmup), "fit_start_s": timer.train_start - timer.fit_start}


def package_eval(cli: CifarBenchCLI, batches: int, warmup: int = 1) -> float:
    """``trainer.validate`` over warm-up + batches batches of the eval batch size: seconds per batch."""
    timer = StepTimer()
    trainer = cli.instantiate_trainer(**QUIET_TRAINER, limit_val_batches=warmup + batches, callbacks=[timer])
    trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    return seconds_per_step(timer.stamps, warmup)


def plain_fast_loop(cli: CifarBenchCLI, steps: int, warmup: int) -> float:
    """The package's data path, model, optimizer, schedule and autocast in a bare loop: Lightning's overhead is the rest.

    Runs after a ``package_train`` of the same CLI: the model's optimizer wiring reads the step count,
    and the loop the precision's autocast context, from that fit's trainer.
    """
    model, datamodule = cli.model, cli.datamodule
    trainer = model.trainer
    configured = model.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    scheduler = configured["lr_scheduler"]["scheduler"] if isinstance(configured, dict) else None
    profile = model.transform_profile
    model.train()
    stamps = []
    for images, labels, indices in datamodule.train_dataloader():
        batch = prepare_batch(images.to(model.device), profile, train=True), labels.to(model.device), indices.to(model.device)
        with trainer.precision_plugin.train_step_context():
            loss = F.cross_entropy(model.logits(batch, "train").float(), batch[1])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        stamps.append(stamp(model.device))
        if len(stamps) == warmup + steps:
            break
    return seconds_per_step(stamps, warmup)


class WholeDataset(CIFAR10DataModule):
    """Predicts over every image, the 50,000 training and the 10,000 test images, as ``evaluate`` does."""

    def predict_dataloader(self):
        return [self._batches("train", self.hparams.eval_batch_size, False), self._batches("test", self.hparams.eval_batch_size, False)]


def predict_everything(cli: CifarBenchCLI, batch_size: int) -> dict:
    """Wall time of ``trainer.predict`` over all 60,000 images (data already in memory)."""
    whole = WholeDataset(**{**init_arguments(cli.datamodule.hparams), "val_size": 0, "train_size": None, "eval_batch_size": batch_size})
    whole.setup("predict")
    trainer = cli.instantiate_trainer(**QUIET_TRAINER, callbacks=[])
    start = time.perf_counter()
    outputs = trainer.predict(cli.model, datamodule=whole)
    seconds = time.perf_counter() - start
    images = sum(len(batch) for loader in outputs for batch in loader)
    return {"images": images, "batch_size": batch_size, "seconds": seconds, "images_per_s": images / seconds}


# --- the study's path ------------------------------------------------------------------------------
class PilImages(Dataset):
    """torchvision's CIFAR10 dataset as the study used it: an HWC uint8 array, one PIL image per item."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable) -> None:
        self.data = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.targets = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


def study_transform(profile: TransformProfile, train: bool) -> transforms.Compose:
    """The study's per-image transforms: flips and rotations when the profile augments, then ToTensor and Normalize."""
    augment = []
    if train and profile.augment:
        augment = [transforms.RandomHorizontalFlip(), transforms.RandomRotation(profile.max_rotation_degrees)]
    return transforms.Compose([*augment, transforms.ToTensor(), transforms.Normalize(profile.mean, profile.std)])


def study_network(model: CifarClassifier) -> nn.Module:
    """A fresh copy of the model's network as the study ran it: no fast-path options, fp32, NCHW."""
    arguments = init_arguments(model.hparams)
    options = {key: value for key, value in FAST_PATH_OPTIONS.items() if key in arguments}
    return type(model)(**{**arguments, **options}).net


def study_loader(images: torch.Tensor, labels: torch.Tensor, profile: TransformProfile, train: bool) -> DataLoader:
    return DataLoader(PilImages(images, labels, study_transform(profile, train)), batch_size=BASELINE_BATCH, shuffle=True)


def study_train(net: nn.Module, loader: DataLoader, lr: float, momentum: float, steps: int, warmup: int) -> float:
    """The study's training loop (its cell 14): seconds per step after warm-up."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net.to(device).train()
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr, momentum=momentum)
    criterion = nn.CrossEntropyLoss()
    stamps, running_loss = [], 0.0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        loss = criterion(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        stamps.append(stamp(device))
        if len(stamps) == warmup + steps:
            break
    return seconds_per_step(stamps, warmup)


def study_eval(net: nn.Module, loader: DataLoader, batches: int, warmup: int = 1) -> float:
    """The study's evaluation loop: seconds per batch of 64 after warm-up."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net.to(device).eval()
    stamps = []
    with torch.no_grad():
        for images, _ in loader:
            net(images.to(device)).argmax(dim=1).cpu()
            stamps.append(stamp(device))
            if len(stamps) == warmup + batches:
                break
    return seconds_per_step(stamps, warmup)


# --- one model -------------------------------------------------------------------------------------
def interleaved(arms: dict[str, Callable[[], float | dict]], repeats: int) -> dict[str, list]:
    """Run every arm once per repeat, in turn (A B C A B C ...)."""
    results: dict[str, list] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, arm in arms.items():
            results[name].append(arm())
    return results


def summary(step_seconds: list[float], batch_size: int, epoch_images: int) -> dict:
    """Median step time over repeats, and what it means per image and per epoch."""
    step = statistics.median(step_seconds)
    return {
        "batch_size": batch_size,
        "step_s": step,
        "images_per_s": batch_size / step,
        "epoch_s": math.ceil(epoch_images / batch_size) * step,
        "repeats_step_s": step_seconds,
    }


def epoch_images(datamodule: CIFAR10DataModule) -> int:
    """Training images per epoch under the config (the whole training split, whatever train_size a bench run uses)."""
    return len(datamodule.arrays.train_labels) - datamodule.hparams.val_size


def cached_overrides(args) -> list[str]:
    """A cached VGG16 run over just enough training images for its timed steps, so that the cache build stays short."""
    train_size = (args.warmup + args.cache_steps) * BASELINE_BATCH
    return ["--model.init_args.cache_features", "true", "--data.train_size", str(train_size), "--data.val_size", str(args.cache_val_size)]


def train_budget(cli: CifarBenchCLI, args) -> tuple[int, int]:
    """(timed steps, warm-up steps): about as many images at any batch size; full VGG16 steps are dear, cached ones cheap."""
    hp, size = cli.model.hparams, cli.datamodule.hparams.batch_size
    if isinstance(cli.model, VGG16Classifier):
        return (args.cache_steps, args.warmup) if hp.cache_features and hp.fold_fc6 else (args.vgg_steps, args.vgg_warmup)
    return max(3, args.steps * BASELINE_BATCH // size), max(1, args.warmup * BASELINE_BATCH // size)


def training_arm(cli: CifarBenchCLI, args, thread_count: int | None = None) -> Callable[[], dict]:
    steps, warmup = train_budget(cli, args)

    def run() -> dict:
        with threads(thread_count):
            return package_train(cli, steps, warmup)

    return run


def eval_batches(images: int, batch_size: int) -> int:
    return max(1, round(images / batch_size))


def lever_settings(name: str, args) -> dict[str, list[str]]:
    """Settings that differ from the shipped config in one lever, timed beside it."""
    if name == "cnn":
        fp32, nchw = ["--trainer.precision", "32-true"], ["--model.init_args.channels_last", "false"]
        return {"fp32, NCHW": [*fp32, *nchw], "fp32, channels_last": fp32, "bf16-mixed, NCHW": nchw}
    if name.startswith("vgg16"):
        unfolded = ["--model.init_args.fold_fc6", "false"]
        return {"fc6 unfolded": unfolded, "fc6 unfolded, cached": [*unfolded, *cached_overrides(args)]}
    return {}


def bench_model(name: str, args, extra: list[str], console: Console) -> dict:
    """Package (and its variants) against the study's loop for one model: training, then evaluation."""
    vgg = name.startswith("vgg16")
    extra = [*extra, "--model.init_args.weights", args.weights] if vgg else extra
    cli = package_cli(name, args.config_dir, extra)
    model, datamodule = cli.model, cli.datamodule
    per_epoch = epoch_images(datamodule)
    study_net = study_network(model)
    steps, warmup = train_budget(cli, args)
    train_loader = study_loader(*datamodule.split("train"), model.transform_profile, train=True)
    eval_loader = study_loader(*datamodule.split("val"), model.transform_profile, train=False)

    arms: dict[str, Callable] = {"package": training_arm(cli, args)}
    if vgg:
        cached = package_cli(name, args.config_dir, [*extra, *cached_overrides(args)])
        arms["package_cached"] = training_arm(cached, args)
    else:
        arms["plain_fast_loop"] = lambda: plain_fast_loop(cli, steps, warmup)
    levers = lever_settings(name, args) if args.levers else {}
    lever_clis = {label: package_cli(name, args.config_dir, [*extra, *overrides]) for label, overrides in levers.items()}
    arms.update({f"lever: {label}": training_arm(lever_cli, args) for label, lever_cli in lever_clis.items()})
    arms["baseline"] = lambda: study_train(study_net, train_loader, model.hparams.lr, model.hparams.momentum, steps, warmup)
    console.print(f"[bold]{name}[/]: training ({', '.join(arms)}), {args.repeats} repeats")
    train = interleaved(arms, args.repeats)

    images = args.vgg_eval_images if vgg else args.eval_images
    eval_clis = {"package": cli}
    if args.levers and name == "cnn":
        for size in (64, 1000):
            eval_clis[f"eval batch {size}"] = package_cli(name, args.config_dir, [*extra, "--data.eval_batch_size", str(size)])
    eval_arms: dict[str, Callable] = {
        label: (lambda c=c: package_eval(c, eval_batches(images, c.datamodule.hparams.eval_batch_size))) for label, c in eval_clis.items()
    }
    eval_arms["baseline"] = lambda: study_eval(study_net, eval_loader, math.ceil(images / BASELINE_BATCH))
    console.print(f"[bold]{name}[/]: evaluation ({', '.join(eval_arms)})")
    evaluation = interleaved(eval_arms, args.repeats)

    def step_times(runs: list) -> list[float]:
        return [run["step_s"] if isinstance(run, dict) else run for run in runs]

    batch = datamodule.hparams.batch_size
    result = {
        "config": f"configs/{name}.yaml",
        "precision": str(cli.trainer.precision),
        "epoch_images": per_epoch,
        "package": summary(step_times(train["package"]), batch, per_epoch),
        "baseline": summary(train["baseline"], BASELINE_BATCH, per_epoch),
        "eval": {
            label: summary(evaluation[label], c.datamodule.hparams.eval_batch_size, per_epoch) for label, c in eval_clis.items()
        }
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
    if vgg:
        cached_runs = train["package_cached"]
        result["package_cached"] = summary(step_times(cached_runs), batch, per_epoch)
        # The cache holds every training image and its mirror image, and the validation images.
        encoded = 2 * len(cached.datamodule.train_index) + len(cached.datamodule.val_index)
        build = statistics.median(run["fit_start_s"] for run in cached_runs)
        full = 2 * per_epoch + datamodule.hparams.val_size
        result["cache"] = {
            "images_encoded": encoded,
            "build_s": build,
            "images_per_s": encoded / build,
            "full_build_images": full,
            "full_build_s_estimated": full * build / encoded,
        }
        result["ratios"]["cached_vs_uncached_epoch"] = result["package"]["epoch_s"] / result["package_cached"]["epoch_s"]
        result["ratios"]["cached_epoch_vs_baseline"] = result["baseline"]["epoch_s"] / result["package_cached"]["epoch_s"]
    if levers:
        result["levers"] = {label: summary(step_times(train[f"lever: {label}"]), batch, per_epoch) for label in levers}
    return result


# --- sweeps, accuracy, the 60,000-image evaluation -----------------------------------------------------
def sweep(name: str, args, extra: list[str]) -> list[dict]:
    """Package training speed at each batch size (default threads), and with each thread count (config batch size)."""
    default = package_cli(name, args.config_dir, extra)
    size, current = default.datamodule.hparams.batch_size, torch.get_num_threads()
    settings = {}
    for b in args.batch_sizes:
        settings[(b, current)] = training_arm(package_cli(name, args.config_dir, [*extra, "--data.batch_size", str(b)]), args)
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
        console.print(f"accuracy check: {args.accuracy_model}, {precision}, {args.accuracy_epochs} epochs on {args.accuracy_images} images")
        cli = package_cli(args.accuracy_model, args.config_dir, [*extra, "--data.train_size", str(args.accuracy_images)])
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


TARGETS = (
    # (what, where in the results, at least / at most, threshold)
    ("cnn training vs baseline", ("models", "cnn", "ratios", "train_images_per_s"), ">=", 3.0),
    ("cnn_bn_do training vs baseline", ("models", "cnn_bn_do", "ratios", "train_images_per_s"), ">=", 3.0),
    ("mlp epoch vs baseline", ("models", "mlp", "ratios", "epoch"), ">=", 10.0),
    ("vgg16_last2 cached vs uncached epoch", ("models", "vgg16_last2", "ratios", "cached_vs_uncached_epoch"), ">=", 20.0),
    ("vgg16_last3 cached vs uncached epoch", ("models", "vgg16_last3", "ratios", "cached_vs_uncached_epoch"), ">=", 20.0),
    ("cnn Lightning overhead", ("models", "cnn", "lightning_overhead"), "<=", 0.05),
    ("cnn evaluate, 60,000 images (s)", ("evaluate", "seconds"), "<=", 30.0),
)


def check_targets(results: dict) -> list[dict]:
    checked = []
    for what, path, relation, threshold in TARGETS:
        value = results
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        met = value >= threshold if relation == ">=" else value <= threshold
        checked.append({"target": what, "value": value, "relation": relation, "threshold": threshold, "met": met})
    return checked


# --- output ----------------------------------------------------------------------------------------
def speed(value: float) -> str:
    return f"{value:,.0f}"


def table(title: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> Table:
    result = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        result.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        result.add_row(*row)
    return result


def print_tables(results: dict, console: Console) -> None:
    info = results["machine"]
    models = results["models"]
    console.print(
        f"[bold]cifar-bench bench[/]: {info['cpu']}, {info['cores']} cores, {info['torch_threads']} threads, torch {info['torch']}"
    )
    rows = []
    for name, row in models.items():
        overhead = row.get("lightning_overhead")
        for label, figures in ((name, row["package"]), (f"{name} cached", row.get("package_cached"))):
            if figures is None:
                continue
            rows.append(
                (
                    label,
                    row["precision"],
                    speed(figures["images_per_s"]),
                    speed(row["baseline"]["images_per_s"]),
                    f"{figures['images_per_s'] / row['baseline']['images_per_s']:.1f}",
                    f"{figures['epoch_s']:.1f}",
                    f"{row['baseline']['epoch_s']:.1f}",
                    "" if overhead is None or label != name else f"{overhead:.1%}",
                )
            )
    columns = ("training", "precision", "img/s", "study img/s", "x study", "epoch s", "study epoch s", "Lightning overhead")
    console.print(table("Training: package vs the study's loop (batch 64)", columns, rows))
    cached = [(name, row) for name, row in models.items() if "cache" in row]
    if cached:
        rows = [
            (
                name,
                f"{row['package']['epoch_s']:.1f}",
                f"{row['package_cached']['epoch_s']:.1f}",
                f"{row['ratios']['cached_vs_uncached_epoch']:.1f}",
                f"{row['cache']['images_per_s']:,.0f}",
                f"{row['cache']['full_build_s_estimated']:.0f}",
            )
            for name, row in cached
        ]
        columns = ("VGG16 feature cache", "epoch s", "cached epoch s", "x faster", "build img/s", "full build s (est.)")
        console.print(table("VGG16 with the frozen-prefix cache", columns, rows))
    rows = []
    for name, row in models.items():
        study = row["eval"]["baseline"]["images_per_s"]
        for label, figures in row["eval"].items():
            if label != "baseline":
                label = name if label == "package" else f"{name} ({label})"
                ratio = f"{figures['images_per_s'] / study:.1f}"
                rows.append((label, str(figures["batch_size"]), speed(figures["images_per_s"]), speed(study), ratio))
    columns = ("evaluation", "batch", "img/s", "study img/s", "x study")
    console.print(table("Evaluation: package vs the study's loop (batch 64)", columns, rows))
    rows = [
        (name, label, speed(figures["images_per_s"]), f"{figures['images_per_s'] / row['package']['images_per_s']:.2f}")
        for name, row in models.items()
        for label, figures in row.get("levers", {}).items()
    ]
    if rows:
        console.print(table("Levers: one setting changed from the shipped config", ("model", "setting", "train img/s", "x shipped"), rows))
    if results.get("sweeps"):
        rows = [
            (row["model"], str(row["batch_size"]), str(row["threads"]), speed(row["images_per_s"]), f"{row['epoch_s']:.1f}")
            for row in results["sweeps"]
        ]
        console.print(table("Package epoch time vs batch size and threads", ("model", "batch", "threads", "img/s", "epoch s"), rows))
    if results.get("evaluate"):
        evaluation = results["evaluate"]
        console.print(
            f"evaluate {evaluation['model']}: {evaluation['images']:,} images in {evaluation['seconds']:.1f} s "
            f"(batch {evaluation['batch_size']})"
        )
    if results.get("accuracy_check"):
        check = results["accuracy_check"]
        console.print(
            f"accuracy check ({check['model']}, {check['epochs']} epochs on {check['train_images']:,} images): "
            f"test accuracy fp32 {check['32-true']['test_acc']:.4f}, bf16-mixed {check['bf16-mixed']['test_acc']:.4f}"
        )
    # The bench itself keeps about one core per thread busy; half as much again means others competed.
    limit = 1.5 * info["cores"]
    busy = [name for name, row in models.items() if max(row.get("load_average", [0])) > limit]
    if busy:
        console.print(f"[yellow]warning[/]: the machine was busy (load average above {limit:g}) while timing {', '.join(busy)}: run again")
    for target in results["targets"]:
        mark = "[green]met[/]" if target["met"] else "[red]missed[/]"
        console.print(f"target {target['target']} {target['relation']} {target['threshold']}: {target['value']:.3g} {mark}")


# --- command ---------------------------------------------------------------------------------------
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
    console = console or Console()
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
    results["models"] = {}
    for name in args.models:
        load_before = os.getloadavg()[0]
        results["models"][name] = bench_model(name, args, extra, console)
        # Other processes on these cores slow multi-threaded steps far more than Python-bound ones.
        results["models"][name]["load_average"] = [load_before, os.getloadavg()[0]]
        gc.collect()  # trainers and models refer to each other: free one model's gigabytes before the next
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
