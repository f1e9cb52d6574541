"""The report's first chapter, the study's Part 2: the dataset as ``analyze`` describes it (counts per
split, class and training batch, channel statistics, a sample grid) when its folder is given; else
the counts the evaluated runs saw, and a line saying what is left out."""

from __future__ import annotations

from pathlib import Path

from cifar_bench.data.sources import load_cifar10
from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.analyze import CHANNELS, describe, sample_grid
from cifar_bench.output import place
from cifar_bench.report.blocks import figure, heading, paragraph, table

SAMPLES_PER_CLASS = 8
STUDY_DATA = (
    "The study: 50,000 training and 10,000 test images of 32×32 RGB in 10 classes, 6,000 a class (5,000 "
    "training, 1,000 test); five training batches of 10,000 images, not balanced by class, and one test batch."
)


def data_chapter(data_dir: str | None, runs: dict[str, list[dict]]) -> list[dict]:
    """Part 2 of the study: the dataset described (``analyze``) when its folder is given, else what the runs saw."""
    blocks = [heading("The data", anchor="data"), paragraph(STUDY_DATA)]
    if data_dir is None:
        blocks.append(
            paragraph("No data folder was given (report DIR --data_dir FOLDER): the dataset analysis is left out.")
        )
    else:
        try:
            arrays = load_cifar10(data_dir, download=False)
        except CifarBenchError as error:
            blocks.append(paragraph(f"CIFAR-10 could not be read from {data_dir} ({error}): the analysis is left out."))
        else:
            return blocks + analysis_blocks(arrays)
    first = next((group[0] for group in runs.values() if group), None)
    try:
        train, test = (first["splits"][split]["per_class"] for split in ("train", "test"))
        rows = [[name, train[name]["support"], test[name]["support"]] for name in train]
    except (KeyError, TypeError):  # runs whose metrics.json lacks the counts: the chapter says no more
        return blocks
    return blocks + [
        paragraph("Images per class that the evaluated runs were evaluated on:"),
        table(["class", "train", "test"], rows),
    ]


def analysis_blocks(arrays) -> list[dict]:
    """``analyze``'s description as tables, and its sample grid."""
    summary = describe(arrays)
    names, per_class, batches = summary["class_names"], summary["per_class"], summary["train_batches"]
    split_rows = [
        [name, per_class["train"][name], per_class["test"][name], per_class["train"][name] + per_class["test"][name]]
        for name in names
    ]
    totals = summary["images"]
    split_rows.append(["all", totals["train"], totals["test"], totals["train"] + totals["test"]])
    batch_rows = [[name, *(batch["per_class"][name] for batch in batches)] for name in names]
    batch_rows += [[key, *(batch[key] for batch in batches)] for key in ("min", "max", "images")]
    channel_rows = [
        [statistic, *(f"{summary[f'channel_{statistic}'][c]:.4f}" for c in CHANNELS)] for statistic in ("mean", "std")
    ]
    grid, _ = sample_grid(arrays, SAMPLES_PER_CLASS)
    shape = " × ".join(map(str, summary["image_shape"]))
    return [
        paragraph(f"Read from {place(summary['folder'], Path.cwd())}: images of shape {shape} ({summary['dtype']})."),
        heading("Images per split and class", 3),
        table(["class", "train", "test", "total"], split_rows),
        heading("Training images per class in each official batch", 3),
        table(["class", *(f"batch {i + 1}" for i in range(len(batches)))], batch_rows),
        heading("Per-channel statistics (training set, pixels / 255)", 3),
        table(["", *CHANNELS], channel_rows),
        figure("data_samples.png", grid, f"The first {SAMPLES_PER_CLASS} training images of each class"),
    ]
