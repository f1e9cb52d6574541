"""``cifar-bench evaluate``: the study's "Result Calculations" notebook, for one trained run.

Predicts all 50,000 training images (none held out, none augmented) and the test set, then prints and
writes, into ``<run>/evaluation/``: accuracies, per-class accuracy lines in the study's form, a
classification report per split in scikit-learn's layout, confusion matrices (PNG and CSV), a grid
of sample predictions, the training curves read back from the run's TensorBoard events, the raw
predictions, and ``metrics.json`` with every number, so that ``compare`` never parses text.
Nothing else in the run folder is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from lightning_fabric import Fabric
from lightning_fabric.utilities.exceptions import MisconfigurationException
from rich.console import Console
from rich.table import Table
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassF1Score, MulticlassPrecision, MulticlassRecall

from cifar_bench.data.sources import NUM_CLASSES
from cifar_bench.errors import CifarBenchError
from cifar_bench.figures import (
    SAMPLE_IMAGES,
    confusion_figure,
    curves_figure,
    prediction_grid_figure,
    reliability_figure,
)
from cifar_bench.lightning_cli import default_precision
from cifar_bench.models import CifarClassifier
from cifar_bench.models.metrics import classification_metrics
from cifar_bench.reports.calibration import calibration_metrics
from cifar_bench.reports.evaluation_files import (
    SPLITS,
    classification_report,
    format_duration,
    per_class_lines,
    read_history,
    write_confusion_csv,
    write_predictions,
)
from cifar_bench.reports.output import print_plain, print_whole, save_figure, write_json, write_text
from cifar_bench.reports.runs import find_run, load_model, read_data

EVALUATION_FOLDER = "evaluation"
METRICS_FILE = "metrics.json"


def logits_in_precision(model: CifarClassifier, images: torch.Tensor, fabric: Fabric, batch_size: int) -> torch.Tensor:
    """``model.predict_logits`` on the Fabric's device, in its precision (autocast, converted weights)."""
    fabric.setup_module(model)
    with fabric.autocast():
        return model.predict_logits(images, batch_size=batch_size)


def report_metrics() -> MetricCollection:
    """Everything in a classification report: the training-time metrics plus support-weighted averages."""
    return MetricCollection(
        {
            **classification_metrics(),
            "precision_weighted": MulticlassPrecision(NUM_CLASSES, average="weighted"),
            "recall_weighted": MulticlassRecall(NUM_CLASSES, average="weighted"),
            "f1_weighted": MulticlassF1Score(NUM_CLASSES, average="weighted"),
        }
    )


def split_metrics(predictions: torch.Tensor, labels: torch.Tensor, class_names: tuple[str, ...]) -> dict:
    """All numbers of one split, from torchmetrics; counts are read off the confusion matrix (rows: true class)."""
    values = report_metrics()(predictions, labels)
    confusion = values["confusion"]
    correct, support = confusion.diagonal(), confusion.sum(dim=1)
    per_class = {
        name: {
            "correct": int(correct[i]),
            "support": int(support[i]),
            "accuracy": float(values["class_acc"][i]),
            "precision": float(values["class_precision"][i]),
            "recall": float(values["class_acc"][i]),
            "f1": float(values["class_f1"][i]),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "accuracy": float(values["acc"]),
        "correct": int(correct.sum()),
        "images": len(labels),
        "per_class": per_class,
        "macro_avg": {key: float(values[f"{key}_macro"]) for key in ("precision", "recall", "f1")},
        "weighted_avg": {key: float(values[f"{key}_weighted"]) for key in ("precision", "recall", "f1")},
        "confusion_matrix": confusion.tolist(),
    }


def evaluate(
    ckpt: str,
    data_dir: Optional[str] = None,
    download: bool = False,
    batch_size: int = 1000,
    out: Optional[str] = None,
    accelerator: str = "auto",
    precision: Optional[str] = None,
    tta: bool = False,
    console: Optional[Console] = None,
) -> dict:
    """Evaluate a trained run (the study's result calculations) and write its reports.

    Args:
        ckpt: a .ckpt file of a run, or a run folder (version_N/) to use its last.ckpt.
        data_dir: folder holding CIFAR-10 (default: look in the run's data.data_dir, never unpacking
            or downloading there).
        download: fetch CIFAR-10 into data_dir when missing.
        batch_size: images per forward pass.
        out: output folder (default: <run>/evaluation).
        accelerator: cpu, gpu, ... (default: auto).
        precision: e.g. 32-true, bf16-mixed (default: the run's trainer.precision; fp32 where this hardware has no bf16).
        tta: also report flip test-time augmentation (each image's and its mirror's logits averaged),
            beside the plain figures (tta_accuracy, tta_top3_accuracy, tta_ece in metrics.json).

    Returns the content of metrics.json.
    """
    console = console or Console()
    if batch_size < 1:
        raise CifarBenchError(f"batch_size must be positive (got {batch_size})")
    run = find_run(ckpt)
    model, checkpoint = load_model(run)
    data_dir, arrays = read_data(run, data_dir, download)
    trained_in = str((run.config.get("trainer") or {}).get("precision") or "32-true")
    # bf16 on hardware without bf16 kernels is emulated, tens of times slower: evaluate such runs in fp32.
    precision = precision or (
        trained_in if "bf16" not in trained_in or default_precision(accelerator) == "bf16-mixed" else "32-true"
    )
    try:
        fabric = Fabric(accelerator=accelerator, devices=1, precision=precision)
    except (ValueError, RuntimeError, MisconfigurationException) as error:
        raise CifarBenchError(f"cannot run on accelerator {accelerator!r} with precision {precision!r}: {error}")

    labels = {"train": arrays.train_labels, "test": arrays.test_labels}
    images = {"train": arrays.train_images, "test": arrays.test_images}
    logits = {split: logits_in_precision(model, images[split], fabric, batch_size) for split in SPLITS}
    predictions = {split: logits[split].argmax(dim=1) for split in SPLITS}
    splits = {split: split_metrics(predictions[split], labels[split], arrays.class_names) for split in SPLITS}
    for split in SPLITS:
        flipped = logits_in_precision(model, images[split].flip(-1), fabric, batch_size) if tta else None
        splits[split].update(calibration_metrics(logits[split], labels[split], flipped))
    curves, training_time = read_history(run.folder)
    trainable, total = model.parameter_counts()
    trained_epochs = curves["train/loss"]["epoch"]
    metrics = {
        "model": run.model_name,
        "model_class": run.config["model"]["class_path"],
        "run": str(run.folder),
        "checkpoint": str(run.checkpoint),
        "checkpoint_epoch": None if checkpoint["epoch"] is None else checkpoint["epoch"] + 1,
        "checkpoint_global_step": checkpoint["global_step"],
        "seed": run.config.get("seed_everything"),
        "precision": precision,
        "transform_profile": model.transform_profile.name,
        "data_dir": str(Path(data_dir).expanduser().resolve()),
        "weight_layers": model.weight_layers,
        "trainable_params": trainable,
        "total_params": total,
        "epochs_trained": max(trained_epochs) if trained_epochs else None,
        "training_time_s": training_time,
        "class_names": list(arrays.class_names),
        "splits": splits,
        "curves": curves,
    }
    write_outputs(
        Path(out) if out is not None else run.folder / EVALUATION_FOLDER, metrics, images, labels, predictions, console
    )
    return metrics


def write_outputs(out: Path, metrics: dict, images, labels, predictions, console: Console) -> None:
    class_names = tuple(metrics["class_names"])
    text = []
    for split in SPLITS:
        values = metrics["splits"][split]
        report = classification_report(values)
        write_text(out / f"classification_report_{split}.txt", report)
        confusion = values["confusion_matrix"]
        write_confusion_csv(out / f"confusion_{split}.csv", confusion, class_names)
        title = f"{metrics['model']}: {split} confusion matrix"
        save_figure(confusion_figure(torch.tensor(confusion), class_names, title), out / f"confusion_{split}.png")
        title = f"{metrics['model']}: {split} reliability (ECE {values['ece']:.4f})"
        save_figure(reliability_figure(values["reliability"], title), out / f"reliability_{split}.png")
        text += [f"{split.capitalize()} accuracy: {values['accuracy']:.4f} ({values['correct']}/{values['images']})"]
        text += [
            f"{split.capitalize()} top-3 accuracy: {values['top3_accuracy']:.4f}, expected calibration error: {values['ece']:.4f}"
        ]
        if "tta_accuracy" in values:
            text += [
                f"{split.capitalize()} with flip TTA: accuracy {values['tta_accuracy']:.4f}, top-3 {values['tta_top3_accuracy']:.4f}, ECE {values['tta_ece']:.4f}"
            ]
        text += [""]
        text += per_class_lines(split, values) + ["", f"[{split.capitalize()}]:", report]
    sample = slice(0, SAMPLE_IMAGES)
    grid = prediction_grid_figure(
        images["test"][sample], predictions["test"][sample], labels["test"][sample], class_names
    )
    save_figure(grid, out / "sample_predictions.png")
    if metrics["epochs_trained"] is not None:
        save_figure(curves_figure(metrics["curves"], f"{metrics['model']}: training curves"), out / "curves.png")
    else:
        text.append(f"No epoch-level training curves in the event files of {metrics['run']}: curves.png not drawn.")
    write_predictions(out / "predictions.npz", labels, predictions)
    write_text(out / "summary.txt", "\n".join(text) + "\n")
    write_json(out / METRICS_FILE, metrics)

    table = Table(title=f"{metrics['model']}: {Path(metrics['checkpoint']).name} of {Path(metrics['run']).name}")
    table.add_column("")
    table.add_column("value", justify="right")
    for split in SPLITS:
        values = metrics["splits"][split]
        table.add_row(f"{split} accuracy", f"{values['accuracy']:.4f}")
        table.add_row(f"{split} top-3 accuracy / ECE", f"{values['top3_accuracy']:.4f} / {values['ece']:.4f}")
        if "tta_accuracy" in values:
            table.add_row(f"{split} accuracy with flip TTA", f"{values['tta_accuracy']:.4f}")
    table.add_row("weight layers", str(metrics["weight_layers"]))
    table.add_row("trainable / total params", f"{metrics['trainable_params']:,} / {metrics['total_params']:,}")
    table.add_row("epochs trained", str(metrics["epochs_trained"]))
    table.add_row("training time", format_duration(metrics["training_time_s"]))
    print_whole(console, table)
    print_plain(console, "\n".join(text))
    print_plain(console, f"Reports written to {out}")
