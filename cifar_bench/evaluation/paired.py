"""``compare --pair [A,B]``: two models on the same test images, from the predictions.npz evaluate wrote."""

from __future__ import annotations

import io
import zipfile
import zlib

import numpy as np

from cifar_bench.data.sources import NUM_CLASSES
from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.evaluated import evaluation_of
from cifar_bench.evaluation.statistics import paired_difference
from cifar_bench.io import read_small_bytes

# The most entries one array of predictions.npz may declare: 20 times CIFAR-10's largest split (50,000
# images). With at most 8 bytes an entry, what is read of the file stays under 8 MB an array, whatever
# its compressed size and whatever its zip directory or array header claim.
MAX_PREDICTIONS = 1_000_000


def first_seed_run(model: str, runs: dict[str, list[dict]]) -> dict:
    """The evaluated run of ``model`` with the lowest seed (runs without a seed last)."""
    if model not in runs:
        known = ", ".join(sorted(runs)) or "none"
        raise CifarBenchError(f"--pair names {model!r}, which has no evaluated run here (models: {known})")
    return min(runs[model], key=lambda run: (run.get("seed") is None, run.get("seed") or 0, run.get("run", "")))


def read_class_array(archive: zipfile.ZipFile, key: str) -> np.ndarray:
    """One array of an npz as int64, its npy header checked before a byte of its data is expanded: one
    dimension of at most ``MAX_PREDICTIONS`` integers (no objects: nothing is unpickled), each a class
    index. Only as many bytes as that header declares are decompressed, however much the member would
    expand to."""
    with archive.open(f"{key}.npy") as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f"{key} is in npy format {version}, not 1.0 or 2.0")
        if dtype.kind not in "iu" or dtype.itemsize > 8:
            raise ValueError(f"{key} holds {dtype}, not integer class indices")
        if len(shape) != 1 or not 0 <= shape[0] <= MAX_PREDICTIONS:
            raise ValueError(f"{key} declares shape {shape}, not one dimension of at most {MAX_PREDICTIONS:,} entries")
        size = shape[0] * dtype.itemsize
        data = member.read(size)
    if len(data) != size:
        raise ValueError(f"{key} is truncated")
    array = np.frombuffer(data, dtype=dtype).astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= NUM_CLASSES):
        raise ValueError(f"{key} holds values outside the class indices 0..{NUM_CLASSES - 1}")
    return array


def load_test_predictions(run: dict) -> tuple[np.ndarray, np.ndarray]:
    """A run's test labels and predictions, of equal and non-zero length, from a predictions.npz trusted in
    nothing: a regular file of at most 16 MB (``read_small_bytes``), each array checked by ``read_class_array``."""
    path = evaluation_of(run).predictions
    try:
        with zipfile.ZipFile(io.BytesIO(read_small_bytes(path))) as archive:
            labels, predictions = (read_class_array(archive, key) for key in ("test_labels", "test_predictions"))
        if not len(labels) or len(labels) != len(predictions):
            raise ValueError(f"{len(labels)} test labels but {len(predictions)} predictions")
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise CifarBenchError(
            f"{path} is missing or not what evaluate writes ({type(error).__name__}: {error}): "
            f"run evaluate again for {run.get('run') or run['evaluation_folder']}"
        )
    return labels, predictions


def paired_comparison(pair: list[str], runs: dict[str, list[dict]]) -> dict:
    """The accuracy difference of pair[0] minus pair[1] on the test images, with its interval and McNemar's p."""
    if len(pair) != 2 or pair[0] == pair[1]:
        raise CifarBenchError(f"--pair takes two different model names, e.g. [cnn,cnn_bn_do] (got {pair})")
    chosen = [first_seed_run(model, runs) for model in pair]
    (labels_a, predictions_a), (labels_b, predictions_b) = (load_test_predictions(run) for run in chosen)
    if not np.array_equal(labels_a, labels_b):
        raise CifarBenchError(
            f"{pair[0]} and {pair[1]} were evaluated on different test images: evaluate both on the same data"
        )
    result = paired_difference(labels_a.tolist(), predictions_a.tolist(), predictions_b.tolist())
    several = [model for model in pair if len(runs[model]) > 1]
    return {
        "first": pair[0],
        "second": pair[1],
        "first_run": chosen[0].get("run"),
        "second_run": chosen[1].get("run"),
        "note": f"several seeds of {' and '.join(several)}: the first seed's run of each is compared"
        if several
        else "",
        **result,
    }


def paired_lines(result: dict) -> list[str]:
    """The paired comparison as Markdown/terminal lines."""
    lines = [
        f"Paired comparison on the same {result['images']} test images: {result['first']} {result['first_accuracy']:.4f} "
        f"vs {result['second']} {result['second_accuracy']:.4f}",
        f"difference {result['difference']:+.4f}, 95% CI [{result['ci_low']:+.4f}, {result['ci_high']:+.4f}] "
        f"(normal approximation on the discordant pairs: {result['only_first_right']} right only by {result['first']}, "
        f"{result['only_second_right']} only by {result['second']}); McNemar exact p = {result['mcnemar_p']:.4g}",
    ]
    return lines + ([f"({result['note']})"] if result["note"] else [])
