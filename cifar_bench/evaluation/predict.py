"""``cifar-bench predict``: a trained run's predictions on one's own images, or on the test set.

In Python, one call gives a model ready for ``model.predict(images)``::

    from cifar_bench.evaluation.predict import load_for_prediction
    model = load_for_prediction("lightning_logs/cnn/version_0/checkpoints/last.ckpt")
    probabilities = model.predict(pil_images)  # or a uint8 tensor (N, 3, H, W); (N, 10) out
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Optional

import torch
from rich.console import Console
from rich.table import Table

from cifar_bench.data.images import SIZE, image_extensions, read_image, to_32
from cifar_bench.data.sources import CLASS_NAMES
from cifar_bench.errors import CifarBenchError, first_line
from cifar_bench.evaluation.runs import find_run, load_model, read_data
from cifar_bench.io import user_path
from cifar_bench.models import CifarClassifier
from cifar_bench.output import (
    csv_text,
    literal_text,
    output_location,
    print_plain,
    print_whole,
    unlinked_folder,
    write_text,
)
from cifar_bench.run_folder import Evaluation

GLOB_CHARACTERS = set("*?[")
# The most paths one glob may walk: ``**`` below a folder holding links to itself has no end otherwise.
MAX_GLOB_PATHS = 100_000


def load_for_prediction(ckpt: str | Path, device: str = "cpu") -> CifarClassifier:
    """The trained model of a checkpoint (or run folder), in eval mode on ``device``, for ``model.predict``."""
    model, _ = load_model(find_run(ckpt))
    return model.to(device).eval()


def image_files(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The files named by paths, folders (their image files, sorted) and globs; and (input, reason) for those naming none."""
    extensions = image_extensions()
    files: dict[Path, None] = {}  # ordered, each file once, without a quadratic search
    missing = []
    for text in inputs:
        path = user_path(text)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in extensions)
        elif path.is_file():
            found = [path]
        elif GLOB_CHARACTERS & set(text):
            found = glob_files(str(path))
        else:
            found = []
        if not found:
            missing.append((text, "no such file" if not path.is_dir() else "no image files in this folder"))
        files.update(dict.fromkeys(found))
    return list(files), missing


def glob_files(pattern: str) -> list[Path]:
    """The files a glob matches, sorted; refused past MAX_GLOB_PATHS walked paths."""
    matches = []
    for walked, name in enumerate(glob.iglob(pattern, recursive=True), start=1):
        if walked > MAX_GLOB_PATHS:
            raise CifarBenchError(
                f"{pattern} walks more than {MAX_GLOB_PATHS:,} paths (a folder linking to itself?): pass a narrower glob"
            )
        if Path(name).is_file():
            matches.append(Path(name))
    return sorted(matches)


def predictions_csv(names: list[str], probabilities: torch.Tensor, labels: torch.Tensor | None) -> str:
    header = ["file", "true_label", "predicted", "probability", *(f"p_{name}" for name in CLASS_NAMES)]
    best = probabilities.max(dim=1)
    rows = [
        [
            name,
            "" if labels is None else CLASS_NAMES[int(labels[i])],
            CLASS_NAMES[int(best.indices[i])],
            f"{float(best.values[i]):.6f}",
            *(f"{p:.6f}" for p in probabilities[i].tolist()),
        ]
        for i, name in enumerate(names)
    ]
    return csv_text(header, rows)


def predict(
    ckpt: str,
    inputs: Optional[list[str]] = None,
    out: Optional[str] = None,
    data_dir: Optional[str] = None,
    download: bool = False,
    batch_size: int = 500,
    device: str = "cpu",
    show: int = 50,
    console: Optional[Console] = None,
) -> dict:
    """Predict the classes of image files (PNG, JPEG, BMP, WebP, GIF, TIFF) or, with no inputs, of the test set.

    Args:
        ckpt: a .ckpt file of a run, or a run folder (version_N/) to use its last.ckpt.
        inputs: image files, folders and globs, e.g. [cat.png,photos/,shots/*.jpg] (default: the official test set).
        out: the CSV written (default: <run>/evaluation/predictions.csv).
        data_dir: folder holding CIFAR-10 when predicting the test set (default: the run's data.data_dir).
        download: fetch CIFAR-10 into --data_dir when missing (a run's own config never makes predict download).
        batch_size: images per forward pass.
        device: cpu, cuda, cuda:1, ...
        show: rows of the table printed on screen (every row goes to the CSV).

    Returns {"files", "probabilities", "labels", "skipped", "csv"}.
    """
    console = console or Console()
    if batch_size < 1:
        raise CifarBenchError(f"batch_size must be positive (got {batch_size})")
    csv_path = output_location(out, folder=False) if out is not None else None
    run = find_run(ckpt)
    model, _ = load_model(run)
    try:
        if torch.device(device).type == "meta":  # takes the model, holds no numbers to predict with
            raise RuntimeError("a meta device holds no data")
        model = model.to(device)
    except (RuntimeError, AssertionError) as error:
        raise CifarBenchError(f"cannot use device {device!r}: {first_line(error)}")
    skipped: list[tuple[str, str]] = []
    labels = None
    if inputs:
        names, images, skipped = read_inputs(list(inputs), console)
    else:
        _, arrays = read_data(run, data_dir, download)
        images, labels = arrays.test_images, arrays.test_labels
        names = [f"test[{i}]" for i in range(len(images))]
    probabilities = model.predict(images, batch_size=batch_size)
    csv_path = csv_path or Evaluation(unlinked_folder(run.folder.evaluation.path, run.folder.path)).predictions_csv
    write_text(csv_path, predictions_csv(names, probabilities, labels))
    print_table(console, run.folder.model_name, names, probabilities, labels, show)
    print_skipped(console, skipped)
    print_plain(console, f"Predictions of {len(names)} images written to {csv_path}")
    return {"files": names, "probabilities": probabilities, "labels": labels, "skipped": skipped, "csv": csv_path}


def read_inputs(inputs: list[str], console: Console) -> tuple[list[str], torch.Tensor, list[tuple[str, str]]]:
    """(names, uint8 (N, 3, 32, 32) images, (input, reason) of those skipped) of the image files the inputs
    name; one error when none is readable, and a line saying how many were resized."""
    files, skipped = image_files(inputs)
    names, tensors, resized = [], [], 0
    for path in files:
        try:
            image = read_image(path)
        except CifarBenchError as error:
            skipped.append((str(path), str(error)))
            continue
        resized += tuple(image.shape[-2:]) != (SIZE, SIZE)
        names.append(str(path))
        tensors.append(to_32(image.unsqueeze(0)))
    if not tensors:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        raise CifarBenchError(
            f"no readable image among the inputs ({reasons}): pass PNG, JPEG, BMP or WebP files, folders or globs"
        )
    if resized:
        print_plain(
            console,
            f"{resized} of {len(names)} images are not {SIZE}x{SIZE}: resized to {SIZE}x{SIZE} with antialiasing",
        )
    return names, torch.cat(tensors), skipped


def print_skipped(console: Console, skipped: list[tuple[str, str]]) -> None:
    if not skipped:
        return
    table = Table(title="Skipped")
    table.add_column("input")
    table.add_column("reason")
    for name, reason in skipped:
        table.add_row(literal_text(name), literal_text(reason))
    print_whole(console, table)


def print_table(console: Console, model: str, names: list[str], probabilities: torch.Tensor, labels, show: int) -> None:
    listed = min(len(names), max(show, 0))
    title = f"{model}: predictions" + (
        f" (first {listed} of {len(names)}; all in the CSV)" if listed < len(names) else ""
    )
    table = Table(title=literal_text(title))
    for heading in ("file", *(("true",) if labels is not None else ()), "predicted", "probability", "top 3"):
        table.add_column(heading, justify="right" if heading == "probability" else "left")
    top = probabilities[:listed].topk(3, dim=1)
    for i in range(listed):
        top3 = ", ".join(f"{CLASS_NAMES[int(c)]} {float(p):.3f}" for p, c in zip(top.values[i], top.indices[i]))
        true = (CLASS_NAMES[int(labels[i])],) if labels is not None else ()
        table.add_row(
            literal_text(names[i]), *true, CLASS_NAMES[int(top.indices[i, 0])], f"{float(top.values[i, 0]):.4f}", top3
        )
    print_whole(console, table)
