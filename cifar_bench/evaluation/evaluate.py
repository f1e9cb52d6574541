"""``cifar-bench evaluate``: the study's "Result Calculations" notebook, for one trained run: every number
and figure into ``<run>/evaluation/``, written whole or not at all, with ``metrics.json`` holding them all so
that ``compare`` and ``report`` never parse text."""

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
from cifar_bench.environment import default_precision
from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.calibration import calibration_metrics
from cifar_bench.evaluation.evaluation_files import (
    SPLITS,
    classification_report,
    folder_written_whole,
    format_duration,
    per_class_lines,
    read_history,
    write_confusion_csv,
    write_predictions,
)
from cifar_bench.evaluation.pretrained import loads_pretrained_weights, params_text, run_weights_text
from cifar_bench.evaluation.runs import Run, find_run, load_model, read_data, trained_images
from cifar_bench.figures import confusion_figure, curves_figure, prediction_grid_figure, reliability_figure
from cifar_bench.models import CifarClassifier
from cifar_bench.models.base import SAMPLE_IMAGES
from cifar_bench.models.metrics import classification_metrics
from cifar_bench.output import (
    literal_text,
    output_location,
    place,
    print_plain,
    print_whole,
    save_figure,
    write_json,
    write_text,
)
from cifar_bench.run_folder import Evaluation, RunFolder, is_integer


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
    out_folder = output_location(out, folder=True) if out is not None else None
    run = find_run(ckpt)
    model, checkpoint = load_model(run)
    data_dir, arrays = read_data(run, data_dir, download)
    precision = precision or evaluation_precision(run, accelerator)
    fabric = evaluation_fabric(accelerator, precision)
    trained = trained_images(run, arrays.train_labels)
    labels = {"train": arrays.train_labels[trained], "test": arrays.test_labels}
    images = {"train": arrays.train_images[trained], "test": arrays.test_images}
    splits, logits = evaluate_splits(model, images, labels, arrays.class_names, fabric, batch_size, tta)
    metrics = {
        **describe_run(run, model, checkpoint),
        "precision": precision,
        "data_dir": place(data_dir, Path.cwd()),
        **training_record(run.folder),
        "class_names": list(arrays.class_names),
        "splits": splits,
    }
    folder, below = (out_folder, None) if out_folder is not None else (run.folder.evaluation.path, run.folder.path)
    with folder_written_whole(folder, below) as staged:
        text = write_outputs(Evaluation(staged), metrics, images, labels, logits)
    print_results(console, metrics, text, folder)
    return metrics


def evaluation_precision(run: Run, accelerator: str) -> str:
    """The precision the run trained in, but fp32 for a bf16 run where this hardware only emulates bf16
    (tens of times slower)."""
    trained_in = str((run.config.get("trainer") or {}).get("precision") or "32-true")
    if "bf16" not in trained_in or default_precision(accelerator) == "bf16-mixed":
        return trained_in
    return "32-true"


def evaluation_fabric(accelerator: str, precision: str) -> Fabric:
    try:
        return Fabric(accelerator=accelerator, devices=1, precision=precision)
    except (ValueError, RuntimeError, MisconfigurationException) as error:
        raise CifarBenchError(f"cannot run on accelerator {accelerator!r} with precision {precision!r}: {error}")


def evaluate_splits(model, images, labels, class_names, fabric: Fabric, batch_size: int, tta: bool):
    """Per split, every number of its report (flip TTA's beside them when asked), and its logits."""
    splits, logits = {}, {}
    for split in SPLITS:
        logits[split] = logits_in_precision(model, images[split], fabric, batch_size)
        splits[split] = split_metrics(logits[split].argmax(dim=1), labels[split], class_names)
        flipped = logits_in_precision(model, images[split].flip(-1), fabric, batch_size) if tta else None
        splits[split].update(calibration_metrics(logits[split], labels[split], flipped))
    return splits, logits


def describe_run(run: Run, model: CifarClassifier, checkpoint: dict) -> dict:
    """What was evaluated: the run, its checkpoint, the model's size (as built, and as the study counts it) and
    the weights it started from."""
    trainable, total = model.parameter_counts()
    study_trainable, study_total = model.study_parameter_counts()
    seed = run.config.get("seed_everything")
    return {
        "model": run.folder.model_name,
        "model_class": run.config["model"]["class_path"],
        "run": place(run.folder.path, run.folder.path.parent.parent),
        "checkpoint": place(run.checkpoint, run.folder.path),
        "checkpoint_epoch": None if checkpoint["epoch"] is None else checkpoint["epoch"] + 1,
        "checkpoint_global_step": checkpoint["global_step"],
        "seed": seed if is_integer(seed) else None,  # true/false: none recorded
        "transform_profile": model.transform_profile.name,
        "weight_layers": model.weight_layers,
        "trainable_params": trainable,
        "total_params": total,
        "study_trainable_params": study_trainable,
        "study_total_params": study_total,
        "weights": run.folder.weights_record(),
    }


def training_record(folder: RunFolder) -> dict:
    """The training curves (event files), how many epochs they cover and the training time, with the part of it
    spent on a feature store and the store read (environment.json)."""
    curves = read_history(folder.path)
    trained_epochs = curves["train/loss"]["epoch"]
    return {
        "epochs_trained": max(trained_epochs) if trained_epochs else None,
        "training_time_s": folder.training_time(),
        "feature_store_s": folder.feature_store_time(),
        "feature_store": folder.feature_store_record(),
        "curves": curves,
    }


def split_lines(split: str, values: dict) -> list[str]:
    """The summary's lines of one split: accuracies, calibration, then the study's per-class lines and the report."""
    name = split.capitalize()
    lines = [
        f"{name} accuracy: {values['accuracy']:.4f} ({values['correct']}/{values['images']})",
        f"{name} top-3 accuracy: {values['top3_accuracy']:.4f}, expected calibration error: {values['ece']:.4f}",
    ]
    if "tta_accuracy" in values:
        lines.append(
            f"{name} with flip TTA: accuracy {values['tta_accuracy']:.4f}, "
            f"top-3 {values['tta_top3_accuracy']:.4f}, ECE {values['tta_ece']:.4f}"
        )
    return [*lines, "", *per_class_lines(split, values), "", f"[{name}]:", classification_report(values)]


def write_split_files(out: Evaluation, metrics: dict, split: str) -> None:
    """One split's classification report, confusion matrix (CSV, PNG) and reliability diagram."""
    values, class_names = metrics["splits"][split], tuple(metrics["class_names"])
    write_text(out.split_file("classification_report", split, ".txt"), classification_report(values))
    confusion = values["confusion_matrix"]
    write_confusion_csv(out.split_file("confusion", split, ".csv"), confusion, class_names)
    title = f"{metrics['model']}: {split} confusion matrix"
    save_figure(
        confusion_figure(torch.tensor(confusion), class_names, title), out.split_file("confusion", split, ".png")
    )
    title = f"{metrics['model']}: {split} reliability (ECE {values['ece']:.4f})"
    save_figure(reliability_figure(values["reliability"], title), out.split_file("reliability", split, ".png"))


def write_outputs(out: Evaluation, metrics: dict, images, labels, logits) -> list[str]:
    """Every file of the evaluation folder; returns the summary's lines."""
    text = []
    for split in SPLITS:
        write_split_files(out, metrics, split)
        text += split_lines(split, metrics["splits"][split])
    sample = slice(0, SAMPLE_IMAGES)
    grid = prediction_grid_figure(
        images["test"][sample],
        logits["test"][sample].argmax(dim=1),
        labels["test"][sample],
        tuple(metrics["class_names"]),
    )
    save_figure(grid, out.sample_predictions)
    if metrics["epochs_trained"] is not None:
        save_figure(curves_figure(metrics["curves"], f"{metrics['model']}: training curves"), out.curves)
    else:
        text.append(f"No epoch-level training curves in the event files of {metrics['run']}: curves.png not drawn.")
    if metrics["training_time_s"] is None:
        text.append(
            f"No training time: {metrics['run']} has no readable environment.json (a run trained before it was "
            "recorded, or without the RecordEnvironment callback)."
        )
    write_predictions(out.predictions, labels, logits)
    write_text(out.summary, "\n".join(text) + "\n")
    write_json(out.metrics, metrics)
    return text


def print_results(console: Console, metrics: dict, text: list[str], out: Path) -> None:
    table = Table(
        title=literal_text(f"{metrics['model']}: {Path(metrics['checkpoint']).name} of {Path(metrics['run']).name}")
    )
    table.add_column("")
    table.add_column("value", justify="right")
    for split in SPLITS:
        values = metrics["splits"][split]
        table.add_row(f"{split} accuracy", f"{values['accuracy']:.4f}")
        table.add_row(f"{split} top-3 accuracy / ECE", f"{values['top3_accuracy']:.4f} / {values['ece']:.4f}")
        if "tta_accuracy" in values:
            table.add_row(f"{split} accuracy with flip TTA", f"{values['tta_accuracy']:.4f}")
    table.add_row("weight layers", str(metrics["weight_layers"]))
    table.add_row("trainable / total params", params_text(metrics, loads_pretrained_weights(metrics)))
    weights = run_weights_text(metrics)
    if weights is not None:
        table.add_row("starting weights", literal_text(weights))  # a file name is shown as named
    table.add_row("epochs trained", str(metrics["epochs_trained"]))
    table.add_row("training time", format_duration(metrics["training_time_s"]))
    print_whole(console, table)
    print_plain(console, "\n".join(text))
    print_plain(console, f"Reports written to {out}")
