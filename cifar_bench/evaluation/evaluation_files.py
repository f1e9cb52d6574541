"""The files ``evaluate`` writes beside its metrics: the study's per-class lines, scikit-learn's report
layout, confusion CSVs, raw predictions, and the training curves read back from TensorBoard events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cifar_bench.output import atomic_file, csv_text, write_text

SPLITS = ("train", "test")
CURVE_TAGS = ("train/loss", "train/acc", "val/loss", "val/acc")


def per_class_lines(split: str, metrics: dict) -> list[str]:
    """The study's lines, e.g. ``Test accuracy of cat : 79.60% (796/1000)``."""
    return [
        f"{split.capitalize()} accuracy of {name} : {row['accuracy']:.2%} ({row['correct']}/{row['support']})"
        for name, row in metrics["per_class"].items()
    ]


def classification_report(metrics: dict, digits: int = 2) -> str:
    """scikit-learn's classification_report layout, filled with the numbers of ``split_metrics``."""
    width = max(len(name) for name in (*metrics["per_class"], "weighted avg"))
    row = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    report = ("{:>{width}s} " + " {:>9}" * 4).format(
        "", "precision", "recall", "f1-score", "support", width=width
    ) + "\n\n"
    for name, values in metrics["per_class"].items():
        report += row.format(
            name, values["precision"], values["recall"], values["f1"], values["support"], width=width, digits=digits
        )
    report += "\n"
    accuracy_row = "{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f}" + " {:>9}\n"
    report += accuracy_row.format(
        "accuracy", "", "", metrics["accuracy"], metrics["images"], width=width, digits=digits
    )
    for heading, key in (("macro avg", "macro_avg"), ("weighted avg", "weighted_avg")):
        values = metrics[key]
        report += row.format(
            heading, values["precision"], values["recall"], values["f1"], metrics["images"], width=width, digits=digits
        )
    return report


def read_history(folder: Path) -> dict[str, dict[str, list[float]]]:
    """Per-epoch curves from the run's TensorBoard event files (one per fit session of a resumed run).

    Lightning logs an ``epoch`` scalar at the same step as every epoch-level metric, which maps steps
    to (1-based) epochs. The training time is not read here but from environment.json (see
    ``RecordEnvironment``): event spans miss each interrupted session's tail.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[str, dict[int, float]] = {tag: {} for tag in CURVE_TAGS}
    epoch_at: dict[int, int] = {}
    for file in sorted(folder.glob("events.out.tfevents.*")):
        events = EventAccumulator(str(file), size_guidance={"scalars": 0})
        events.Reload()
        tags = events.Tags()["scalars"]
        if "epoch" in tags:
            epoch_at.update({event.step: int(event.value) + 1 for event in events.Scalars("epoch")})
        for tag in CURVE_TAGS:
            if tag in tags:
                points[tag].update({event.step: event.value for event in events.Scalars(tag)})
    curves = {}
    for tag, values in points.items():
        steps = [step for step in sorted(values) if step in epoch_at]
        curves[tag] = {"epoch": [epoch_at[step] for step in steps], "value": [values[step] for step in steps]}
    return curves


def write_confusion_csv(path: Path, confusion: list[list[int]], class_names: tuple[str, ...]) -> Path:
    """Rows are true classes, columns predicted ones; the header and first column name them."""
    rows = [[name, *row] for name, row in zip(class_names, confusion)]
    return write_text(path, csv_text(["true \\ predicted", *class_names], rows))


def write_predictions(path: Path, labels: dict[str, torch.Tensor], logits: dict[str, torch.Tensor]) -> Path:
    """Labels and predicted classes per split (``<split>_labels``, ``<split>_predictions``), and the test
    logits as float16 (``test_logits``): what paired comparisons, calibration or ensembles need later, with
    no checkpoint and no data (about 200 KB a run, compressed)."""
    arrays = {"test_logits": logits["test"].numpy().astype(np.float16)}
    for split in SPLITS:
        arrays[f"{split}_labels"] = labels[split].numpy().astype(np.uint8)
        arrays[f"{split}_predictions"] = logits[split].argmax(dim=1).numpy().astype(np.uint8)
    with atomic_file(path) as handle:
        np.savez_compressed(handle, **arrays)
    return path


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"
