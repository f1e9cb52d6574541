"""Timing that every arm shares, and the package's own arms: train and validate through the configs, and evaluate.

The package path is the product itself: configs/base.yaml and configs/<model>.yaml through CifarBenchCLI,
so DataModule, model, precision and Trainer are those of ``cifar-bench fit``. Speeds are timed between the
ends of consecutive steps after a warm-up, so they include fetching, augmentation, the step itself and
whatever runs between steps.
"""

from __future__ import annotations

import copy
import math
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning_fabric import Fabric
from pytorch_lightning.callbacks import Callback, ModelSummary, ProgressBar

from cifar_bench.data import CIFAR10DataModule
from cifar_bench.data.sources import BINARY_FOLDER, CLASS_NAMES, TRAIN_BATCHES, load_cifar10
from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.evaluate import logits_in_precision
from cifar_bench.models import CifarClassifier
from cifar_bench.training.callbacks import RunSummary
from cifar_bench.training.lightning_cli import CifarBenchCLI
from cifar_bench.training.preemption import SaveOnSigterm

BASELINE_BATCH = 64
QUIET_TRAINER = {
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
}


# --- what runs where -------------------------------------------------------------------------------
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
        raise CifarBenchError(
            f"only {len(stamps)} steps ran, {warmup} of them warm-up: use fewer warm-up steps or more data"
        )
    return (stamps[-1] - stamps[warmup - 1]) / (len(stamps) - warmup)


def init_arguments(hparams) -> dict:
    """The constructor arguments saved in ``hparams``, without the entries jsonargparse adds (``_class_path``...)."""
    return {key: value for key, value in hparams.items() if not key.startswith("_")}


class StepTimer(Callback):
    """Stamps the end of every batch, and the fit's start and its training start."""

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
def package_cli(name: str, config_dir: str | Path, extra: Iterable[str]) -> CifarBenchCLI:
    """Model and DataModule exactly as ``cifar-bench fit --config base.yaml --config <name>.yaml [extra]`` builds them."""
    args = [
        "--config",
        str(Path(config_dir) / "base.yaml"),
        "--config",
        str(Path(config_dir) / f"{name}.yaml"),
        "--trainer.logger",
        "false",
        *extra,
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python")
        cli = CifarBenchCLI(
            CifarClassifier,
            CIFAR10DataModule,
            subclass_mode_model=True,
            run=False,
            args=args,
            save_config_callback=None,
        )
    cli.datamodule.setup("fit")
    return cli


def fit_callbacks(cli: CifarBenchCLI) -> list[Callback]:
    """Fresh copies of the callbacks the config gives a fit (its checkpoints, the feature-store feeder, the
    non-finite-loss stop...), so that the timed steps pay for the hooks a user's steps pay for; less those that
    only print (the progress bar, which off a terminal redraws nothing between steps, the model summary and the
    fit's closing summary) and the SIGTERM saver: a bench is not resumed, and the step it saved would go with
    the temporary folder, so a SIGTERM stops it as Lightning's own handling does."""
    configured = cli.config_init["trainer"].get("callbacks") or []
    left_out = (ProgressBar, ModelSummary, RunSummary, SaveOnSigterm)
    return [copy.deepcopy(callback) for callback in configured if not isinstance(callback, left_out)]


def package_train(cli: CifarBenchCLI, steps: int, warmup: int, with_callbacks: bool = True) -> dict:
    """``trainer.fit`` for warm-up + steps batches with the config's callbacks, no validation: seconds per
    step, and fit start to first step (which includes opening, or building, a VGG16 feature store). Its
    checkpoints go to a temporary folder, written after the last timed step. ``with_callbacks=False``: the
    step timer alone, so that what the config's callbacks cost parts from what Lightning's loop does."""
    timer = StepTimer()
    per_epoch = warmup + steps
    with tempfile.TemporaryDirectory(prefix="bench-fit-") as root, warnings.catch_warnings():
        # The best-checkpoint callback looks for val/acc, which a fit without validation never logs.
        warnings.filterwarnings("ignore", message=r"`ModelCheckpoint\(monitor=.*could not find the monitored key")
        trainer = cli.instantiate_trainer(
            **QUIET_TRAINER | {"enable_checkpointing": with_callbacks},
            default_root_dir=root,
            max_epochs=1,
            limit_train_batches=per_epoch,
            limit_val_batches=0,
            callbacks=[timer, *(fit_callbacks(cli) if with_callbacks else [])],
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
    model.train()
    stamps = []
    for images, labels, indices in datamodule.train_dataloader():
        batch = model.prepare_inputs(images, train=True), labels.to(model.device), indices.to(model.device)
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


def evaluate_everything(cli: CifarBenchCLI, batch_size: int) -> dict:
    """Wall time of evaluate's inference over all 60,000 images, the 50,000 training and the 10,000 test
    images (data already in memory): ``logits_in_precision``, in the precision the config trains in."""
    arrays, model = cli.datamodule.arrays, cli.model
    # The device and precision the config's Trainer runs on, as evaluate would use for its run.
    device = cli.trainer.strategy.root_device.type
    fabric = Fabric(accelerator=device, devices=1, precision=str(cli.trainer.precision))
    start = time.perf_counter()
    logits = [
        logits_in_precision(model, images, fabric, batch_size) for images in (arrays.train_images, arrays.test_images)
    ]
    seconds = time.perf_counter() - start
    images = sum(len(split) for split in logits)
    return {"images": images, "batch_size": batch_size, "seconds": seconds, "images_per_s": images / seconds}


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


def training_subset_copy(data_dir: str, download: bool, folder: Path, images: int) -> Path:
    """An official binary-version copy of the first ``images`` training images (and as many test images as one of
    its batches holds) in ``folder``: what a store-fed arm trains from when its store is to be built from a subset,
    in about images / 50,000 of a full build's time (the store is keyed by the images, so it is a store of its own)."""
    arrays = load_cifar10(data_dir, download)
    per_batch = images // TRAIN_BATCHES
    if per_batch < 1 or images > len(arrays.train_labels):
        raise CifarBenchError(
            f"store_images {images} is not between {TRAIN_BATCHES} and {len(arrays.train_labels)}: choose one"
        )
    target = folder / BINARY_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    splits = [(arrays.train_images, arrays.train_labels, index * per_batch) for index in range(TRAIN_BATCHES)]
    splits.append((arrays.test_images, arrays.test_labels, 0))
    names = [f"data_batch_{index}.bin" for index in range(1, TRAIN_BATCHES + 1)] + ["test_batch.bin"]
    for name, (images_, labels, start) in zip(names, splits):
        pixels = images_[start : start + per_batch].reshape(per_batch, -1).numpy()
        records = torch.cat([labels[start : start + per_batch, None].to(torch.uint8), torch.from_numpy(pixels)], 1)
        (target / name).write_bytes(records.numpy().tobytes())
    (target / "batches.meta.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    return folder
