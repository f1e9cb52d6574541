"""The study's Part 2, the dataset analysis: rich tables on the console, ``analysis.json`` and ``samples.png``.

Counts come from ``torch.bincount``, channel statistics from exact integer sums over chunks of the
uint8 images, so the whole training set is described without a float copy of it or per-image Python.
"""

from __future__ import annotations

from typing import Optional

import torch
from jsonargparse.typing import restricted_number_type
from rich.console import Console
from rich.table import Table

from cifar_bench.data.sources import NUM_CLASSES, REQUIRED_FILES, TRAIN_BATCHES, CifarArrays, load_cifar10
from cifar_bench.figures import image_grid_figure
from cifar_bench.output import literal_text, output_location, print_plain, print_whole, save_figure, write_json

CHANNELS = ("red", "green", "blue")


def class_counts(labels: torch.Tensor) -> list[int]:
    """Images per class, in class order."""
    return torch.bincount(labels, minlength=NUM_CLASSES).tolist()


def channel_mean_std(images: torch.Tensor, chunk: int = 2048) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of pixels/255 over a uint8 (N, C, H, W) batch.

    Sums of values and of squares are int64, hence exact; only the final division is floating point.
    """
    totals = torch.zeros(images.shape[1], dtype=torch.int64)
    squares = torch.zeros(images.shape[1], dtype=torch.int64)
    for part in images.split(chunk):
        values = part.to(torch.int64)
        totals += values.sum((0, 2, 3))
        squares += values.square().sum((0, 2, 3))
    count = images.numel() // images.shape[1]
    mean = totals.double() / count
    variance = squares.double() / count - mean.square()
    return (mean / 255).tolist(), (variance.sqrt() / 255).tolist()


def first_of_each_class(labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """Indices of the first ``per_class`` images of every class (fewer if a class is smaller), class by class."""
    counts = torch.bincount(labels, minlength=NUM_CLASSES)
    per_class = min(per_class, int(counts.min()))
    by_class = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    return by_class[(starts[:, None] + torch.arange(per_class)).flatten()]


def describe(arrays: CifarArrays) -> dict:
    """Every number the analysis reports, JSON-ready."""
    names = list(arrays.class_names)
    batch_files = REQUIRED_FILES[arrays.folder.name][:TRAIN_BATCHES]
    batches = []
    for name, labels in zip(batch_files, arrays.train_labels.split(list(arrays.train_batch_sizes))):
        counts = class_counts(labels)
        batches.append(
            {
                "file": name,
                "images": len(labels),
                "per_class": dict(zip(names, counts)),
                "min": min(counts),
                "max": max(counts),
            }
        )
    mean, std = channel_mean_std(arrays.train_images)
    return {
        "folder": str(arrays.folder),
        "class_names": names,
        "image_shape": list(arrays.train_images.shape[1:]),
        "dtype": str(arrays.train_images.dtype).removeprefix("torch."),
        "images": {"train": len(arrays.train_labels), "test": len(arrays.test_labels)},
        "per_class": {
            "train": dict(zip(names, class_counts(arrays.train_labels))),
            "test": dict(zip(names, class_counts(arrays.test_labels))),
        },
        "train_batches": batches,
        "channel_mean": dict(zip(CHANNELS, mean)),
        "channel_std": dict(zip(CHANNELS, std)),
    }


def sample_grid(arrays: CifarArrays, samples_per_class: int):
    """The first ``samples_per_class`` training images of each class, a class a row; and their indices."""
    picked = first_of_each_class(arrays.train_labels, samples_per_class)
    titles = [arrays.class_names[label] for label in arrays.train_labels[picked].tolist()]
    return image_grid_figure(arrays.train_images[picked], titles, columns=max(1, len(picked) // NUM_CLASSES)), picked


def summary_tables(summary: dict) -> list[Table]:
    """The console view of :func:`describe`: splits per class, classes per training batch, image format, channels."""
    names = summary["class_names"]
    train, test = summary["per_class"]["train"], summary["per_class"]["test"]
    splits = Table(title="Images per split and class")
    for column in ("class", "train", "test", "total"):
        splits.add_column(column, justify="left" if column == "class" else "right")
    for name in names:
        splits.add_row(literal_text(name), str(train[name]), str(test[name]), str(train[name] + test[name]))
    totals = summary["images"]
    splits.add_section()
    splits.add_row(
        "all", str(totals["train"]), str(totals["test"]), str(totals["train"] + totals["test"]), style="bold"
    )

    batches = summary["train_batches"]
    per_batch = Table(title="Training images per class in each official batch (not balanced)")
    per_batch.add_column("class")
    for position in range(len(batches)):
        per_batch.add_column(f"batch {position + 1}", justify="right")
    for name in names:
        per_batch.add_row(literal_text(name), *(str(batch["per_class"][name]) for batch in batches))
    per_batch.add_section()
    for key in ("min", "max", "images"):
        per_batch.add_row(key, *(str(batch[key]) for batch in batches), style="bold")

    image_format = Table(title="Image format")
    image_format.add_column("shape (channels, height, width)", justify="right")
    image_format.add_column("dtype", justify="right")
    image_format.add_row(" x ".join(map(str, summary["image_shape"])), summary["dtype"])

    pixels = Table(title="Per-channel statistics (training set, pixels / 255)")
    for column in ("", *CHANNELS):
        pixels.add_column(column, justify="right")
    pixels.add_row("mean", *(f"{summary['channel_mean'][c]:.4f}" for c in CHANNELS))
    pixels.add_row("std", *(f"{summary['channel_std'][c]:.4f}" for c in CHANNELS))
    return [splits, per_batch, image_format, pixels]


# samples.png is a column per sample: 100 make a 15,400-pixel-wide figure, 430 pass Agg's limit of 2^16 pixels.
SamplesPerClass = restricted_number_type(
    "SamplesPerClass", int, [(">=", 1), ("<=", 100)], docstring="int from 1 to 100"
)


def analyze(
    data_dir: str = "data",
    download: bool = True,
    out: str = "reports/analysis",
    samples_per_class: SamplesPerClass = 10,
    console: Optional[Console] = None,
) -> dict:
    """Describe the CIFAR-10 dataset (the study's Part 2): tables on screen, analysis.json and samples.png.

    Args:
        data_dir: folder holding CIFAR-10 or an official archive.
        download: fetch CIFAR-10 with torchvision when no copy is found.
        out: where analysis.json and samples.png go.
        samples_per_class: images of each class in samples.png.
    """
    out = output_location(out, folder=True)
    console = console or Console()
    arrays = load_cifar10(data_dir, download)
    summary = describe(arrays)
    print_plain(console, f"CIFAR-10 read from {arrays.folder}")
    for table in summary_tables(summary):
        print_whole(console, table)
    figure, picked = sample_grid(arrays, samples_per_class)
    summary["samples"] = {"file": "samples.png", "train_indices": picked.tolist()}
    save_figure(figure, out / "samples.png")
    write_json(out / "analysis.json", summary)
    print_plain(console, f"wrote {out / 'analysis.json'} and {out / 'samples.png'}")
    return summary
