"""The files ``evaluate`` writes beside its metrics: the study's per-class lines, scikit-learn's report
layout, confusion CSVs, raw predictions, and the training curves read back from TensorBoard events; and
the folder they go to, written whole or not at all (``folder_written_whole``)."""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import torch

from cifar_bench.errors import CifarBenchError
from cifar_bench.io import link_refused, open_folder, unwritable, write_below
from cifar_bench.output import atomic_file, csv_text, refuse_links, write_text

SPLITS = ("train", "test")
# renameat2's flag that swaps two names in one step (Linux 3.15).
RENAME_EXCHANGE = 2
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
        if not file.is_file():  # TensorBoard's reader would wait forever on a FIFO, or never end on a device
            continue
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


@contextmanager
def folder_written_whole(folder: Path, below: Path | None = None) -> Iterator[Path]:
    """Yield a new, hidden folder to write the files of ``folder`` into, which takes their place only once the
    block succeeds (removed if it fails): a reader sees the earlier ``folder`` whole, or none, never half of one.
    ``below``: the command's own folder (a run's ``evaluation/``), reached from ``below`` through no link and
    exchanged whole, keeping what the earlier one held that the new one lacks; None: the user's ``--out``, into
    which the new files are moved one by one at the end."""
    folder = Path(os.path.abspath(folder))
    if below is not None:
        refuse_links((folder,), below)
    inside = below is None and os.path.isdir(folder)  # the user's folder itself is never replaced
    home, staged = folder if inside else folder.parent, f".{folder.name}.{secrets.token_hex(4)}.partial"
    try:
        parent = open_folder(home, root=below)
    except OSError as error:
        raise unwritable(folder, error) from error
    try:
        os.mkdir(staged, dir_fd=parent)
    except OSError as error:
        os.close(parent)
        raise unwritable(folder, error) from error
    write_below(below or home, (home / staged,))
    try:
        yield home / staged
        publish(parent, staged, folder, inside)
    except BaseException as error:
        shutil.rmtree(staged, dir_fd=parent, ignore_errors=True)
        cause = error.__cause__ if isinstance(error, CifarBenchError) else error
        if isinstance(cause, OSError):  # a write refused (a full disk): said of the folder, not of the hidden one
            raise unwritable(folder, cause) from cause
        raise
    finally:
        os.close(parent)


def publish(parent: int, staged: str, folder: Path, inside: bool) -> None:
    """Put the folder ``staged`` (in the folder ``parent``) in place of ``folder`` (see ``folder_written_whole``)."""
    if inside:
        new = os.open(staged, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        try:
            for entry in os.listdir(new):
                os.replace(entry, entry, src_dir_fd=new, dst_dir_fd=parent)
        finally:
            os.close(new)
        os.rmdir(staged, dir_fd=parent)
        return
    try:
        earlier = os.stat(folder.name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(staged, folder.name, src_dir_fd=parent, dst_dir_fd=parent)
        return
    if stat.S_ISLNK(earlier.st_mode):
        raise link_refused(folder)
    old, new = (
        os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent) for name in (folder.name, staged)
    )
    moved = []
    try:
        ours = set(os.listdir(new))
        for entry in sorted(set(os.listdir(old)) - ours):
            try:
                if stat.S_ISDIR(os.stat(entry, dir_fd=old, follow_symlinks=False).st_mode):
                    raise IsADirectoryError(entry)
                os.link(entry, entry, src_dir_fd=old, dst_dir_fd=new, follow_symlinks=False)
            except OSError:  # a folder, or a file the system will not link: moved, just before the exchange
                moved.append(entry)
        os.fchmod(new, stat.S_IMODE(earlier.st_mode))
        try:
            for entry in moved:
                os.rename(entry, entry, src_dir_fd=old, dst_dir_fd=new)
            exchange(parent, staged, folder.name)
        except BaseException:
            for entry in moved:
                with suppress(OSError):
                    os.rename(entry, entry, src_dir_fd=new, dst_dir_fd=old)
            raise
    finally:
        os.close(old)
        os.close(new)
    shutil.rmtree(staged, dir_fd=parent, ignore_errors=True)  # the earlier folder, now


def exchange(parent: int, staged: str, name: str) -> None:
    """Swap the folders ``staged`` and ``name`` in the folder ``parent``, in one step where the system can."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        if renameat2(parent, os.fsencode(staged), parent, os.fsencode(name), RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # no such call, or not on this filesystem
            raise OSError(code, os.strerror(code), name)
    aside = f"{staged}.earlier"
    os.rename(name, aside, src_dir_fd=parent, dst_dir_fd=parent)
    try:
        os.rename(staged, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        os.rename(aside, name, src_dir_fd=parent, dst_dir_fd=parent)
        raise
    os.rename(aside, staged, src_dir_fd=parent, dst_dir_fd=parent)
