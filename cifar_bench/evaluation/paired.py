"""``compare --pair [A,B]``: two models on the same test images, from the predictions.npz evaluate wrote; with
several seeds of both, also across the seeds they share (a seed's two runs paired), as the table's rows are."""

from __future__ import annotations

import io
import zipfile
import zlib

import numpy as np

from cifar_bench.data.sources import NUM_CLASSES
from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.evaluated import evaluation_of
from cifar_bench.evaluation.statistics import paired_difference, t_interval
from cifar_bench.io import read_small_bytes

# The most entries one array of predictions.npz may hold: 20 times CIFAR-10's largest split (50,000 images).
MAX_PREDICTIONS = 1_000_000
# The most bytes one member may declare it expands to: that many 8-byte integers and an npy header (numpy
# reads at most 10,000 header bytes). zipfile expands a member no further than its declared size.
MAX_MEMBER_BYTES = MAX_PREDICTIONS * 8 + 10_000


def first_seed_run(model: str, runs: dict[str, list[dict]]) -> dict:
    """The evaluated run of ``model`` with the lowest seed (runs without a seed last)."""
    if model not in runs:
        known = ", ".join(sorted(runs)) or "none"
        raise CifarBenchError(f"--pair names {model!r}, which has no evaluated run here (models: {known})")
    return min(runs[model], key=lambda run: (run.get("seed") is None, run.get("seed") or 0, run["run_name"]))


def class_indices(npz: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    """One array of predictions.npz as int64: one dimension of at most ``MAX_PREDICTIONS`` class indices."""
    array = npz[key]
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{key} is not an npy array")
    if array.dtype.kind not in "iu":
        raise ValueError(f"{key} holds {array.dtype}, not integer class indices")
    if array.ndim != 1 or array.size > MAX_PREDICTIONS:
        raise ValueError(f"{key} has shape {array.shape}, not one dimension of at most {MAX_PREDICTIONS:,} entries")
    if array.size and (array.min() < 0 or array.max() >= NUM_CLASSES):
        raise ValueError(f"{key} holds values outside the class indices 0..{NUM_CLASSES - 1}")
    return array.astype(np.int64)


def load_test_predictions(run: dict) -> tuple[np.ndarray, np.ndarray]:
    """A run's test labels and predictions, of equal and non-zero length, from a predictions.npz trusted in
    nothing: a regular file of at most 16 MB (``read_small_bytes``) whose members each declare at most
    ``MAX_MEMBER_BYTES`` expanded, checked before any is expanded, read by numpy without unpickling."""
    path = evaluation_of(run).predictions
    try:
        with np.lib.npyio.NpzFile(io.BytesIO(read_small_bytes(path)), allow_pickle=False) as npz:
            for member in npz.zip.infolist():
                if member.file_size > MAX_MEMBER_BYTES:
                    raise ValueError(
                        f"{member.filename} would expand to {member.file_size:,} bytes, more than {MAX_MEMBER_BYTES:,}"
                    )
            labels, predictions = (class_indices(npz, key) for key in ("test_labels", "test_predictions"))
        if not len(labels) or len(labels) != len(predictions):
            raise ValueError(f"{len(labels)} test labels but {len(predictions)} predictions")
    except (OSError, KeyError, ValueError, EOFError, MemoryError, zipfile.BadZipFile, zlib.error) as error:
        # MemoryError: an npy header declaring more entries than memory holds (its member holds far fewer).
        raise CifarBenchError(
            f"{path} is missing or not what evaluate writes ({type(error).__name__}: {error}): "
            f"run evaluate again for {run['run_name']}"
        )
    return labels, predictions


def seed_pairs(pair: list[str], runs: dict[str, list[dict]]) -> list[tuple[int, dict, dict]]:
    """(seed, run of pair[0], run of pair[1]) for each seed both models have a run of, in seed order."""
    by_seed = [{run["seed"]: run for run in runs[model] if run.get("seed") is not None} for model in pair]
    return [(seed, by_seed[0][seed], by_seed[1][seed]) for seed in sorted(by_seed[0].keys() & by_seed[1].keys())]


def same_images_difference(pair: list[str], chosen: list[dict]) -> dict:
    """pair[0]'s accuracy minus pair[1]'s, each by its run in ``chosen``, on the same test images (McNemar's p)."""
    (labels_a, predictions_a), (labels_b, predictions_b) = (load_test_predictions(run) for run in chosen)
    if not np.array_equal(labels_a, labels_b):
        raise CifarBenchError(
            f"{pair[0]} and {pair[1]} were evaluated on different test images: evaluate both on the same data"
        )
    return paired_difference(labels_a.tolist(), predictions_a.tolist(), predictions_b.tolist())


def paired_comparison(pair: list[str], runs: dict[str, list[dict]]) -> dict:
    """The accuracy difference of pair[0] minus pair[1] on the test images, with its interval and McNemar's p, for
    the first seed's run of each; where both have runs of two seeds or more, ``seeds`` adds each shared seed's
    difference and McNemar p and their mean with its t interval: what a claim about the models rests on, since
    one pair of runs cannot show how much another seed's runs differ."""
    if len(pair) != 2 or pair[0] == pair[1]:
        raise CifarBenchError(f"--pair takes two different model names, e.g. [cnn,cnn_bn_do] (got {pair})")
    chosen = [first_seed_run(model, runs) for model in pair]
    result = same_images_difference(pair, chosen)
    shared = seed_pairs(pair, runs)
    seeds = None
    if len(shared) > 1:
        per_seed = [same_images_difference(pair, [a, b]) for _, a, b in shared]
        differences = [each["difference"] for each in per_seed]
        low, high = t_interval(differences)
        seeds = {
            "seeds": [seed for seed, _, _ in shared],
            "differences": differences,
            "mcnemar_p": [each["mcnemar_p"] for each in per_seed],
            "difference": sum(differences) / len(differences),
            "ci_low": low,
            "ci_high": high,
        }
    several = [model for model in pair if len(runs[model]) > 1]
    return {
        "first": pair[0],
        "second": pair[1],
        "first_run": chosen[0]["run_name"],  # the run's place under the folder compared, never a local path
        "second_run": chosen[1]["run_name"],
        "note": f"several seeds of {' and '.join(several)}: the first seed's run of each is compared"
        if several
        else "",
        **result,
        "seeds": seeds,
    }


def seeds_text(seeds: dict) -> str:
    """The comparison across shared seeds as compare and the report say it."""
    per_seed = ", ".join(
        f"{difference:+.4f} ({mcnemar_p_text(p).removeprefix('McNemar exact ')})"
        for difference, p in zip(seeds["differences"], seeds["mcnemar_p"])
    )
    names = ", ".join(map(str, seeds["seeds"]))
    return (
        f"over seeds {names}, each seed's two runs paired on the same test images: {seeds['difference']:+.4f}, 95% "
        f"CI [{seeds['ci_low']:+.4f}, {seeds['ci_high']:+.4f}] (t, {len(seeds['seeds'])} seeds); per seed, with "
        f"McNemar's exact p: {per_seed}"
    )


def mcnemar_p_text(p: float) -> str:
    """McNemar's exact p as compare and the report say it. Below 1e-300 the exact sum underflows (to 0 for
    thousands of discordant pairs): it is given as that bound, never as p = 0."""
    return "McNemar exact p < 1e-300" if p < 1e-300 else f"McNemar exact p = {p:.3g}"


def paired_lines(result: dict) -> list[str]:
    """The paired comparison as lines of text, for the terminal and comparison.md (each escapes them its way)."""
    lines = [
        f"Paired comparison on the same {result['images']} test images: {result['first']} {result['first_accuracy']:.4f} "
        f"vs {result['second']} {result['second_accuracy']:.4f}",
        f"difference {result['difference']:+.4f}, 95% CI [{result['ci_low']:+.4f}, {result['ci_high']:+.4f}] "
        f"(normal approximation on the discordant pairs: {result['only_first_right']} right only by {result['first']}, "
        f"{result['only_second_right']} only by {result['second']}); {mcnemar_p_text(result['mcnemar_p'])}",
    ]
    lines += [f"({result['note']})"] if result["note"] else []
    return lines + (
        [f"{result['first']} − {result['second']} {seeds_text(result['seeds'])}"] if result["seeds"] else []
    )
