"""``compare --pair [A,B]``: two models on the same test images, from the predictions.npz evaluate wrote; with
several seeds of both, also across the seeds they share (a seed's two runs paired), as the table's rows are."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable

import numpy as np

from cifar_bench.data.sources import NUM_CLASSES
from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.evaluated import evaluation_of
from cifar_bench.evaluation.statistics import paired_difference, seeds_difference_interval
from cifar_bench.io import read_small_bytes
from cifar_bench.run_folder import PREDICTIONS_FILE

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
                # zipfile bounds what it expands by the declared size for deflate only (bzip2 and lzma expand
                # whole chunks first); np.savez_compressed writes deflate, np.savez stored.
                if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or member.flag_bits & 1:
                    raise ValueError(f"{member.filename} is encrypted or compressed otherwise than numpy writes")
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


def runs_by_seed(model: str, runs: dict[str, list[dict]]) -> dict[int, dict]:
    """The model's run of each seed; of several runs of one seed, the first by name (as ``first_seed_run``)."""
    chosen: dict[int, dict] = {}
    for run in sorted(runs[model], key=lambda run: run["run_name"]):
        if run.get("seed") is not None:
            chosen.setdefault(run["seed"], run)
    return chosen


def seed_pairs(pair: list[str], runs: dict[str, list[dict]]) -> list[tuple[int, dict, dict]]:
    """(seed, run of pair[0], run of pair[1]) for each seed both models have a run of, in seed order."""
    first, second = (runs_by_seed(model, runs) for model in pair)
    return [(seed, first[seed], second[seed]) for seed in sorted(first.keys() & second.keys())]


def same_images_difference(pair: list[str], chosen: list[dict], readable: Callable[[dict], bool] | None = None) -> dict:
    """pair[0]'s accuracy minus pair[1]'s, each by its run in ``chosen``, on the same test images (McNemar's p);
    ``readable`` may refuse a run's predictions before they are read (the report's rule on links)."""
    for run in chosen:
        if readable is not None and not readable(run):
            raise CifarBenchError(f"{run['run_name']}'s {PREDICTIONS_FILE} is missing or refused here")
    (labels_a, predictions_a), (labels_b, predictions_b) = (load_test_predictions(run) for run in chosen)
    if not np.array_equal(labels_a, labels_b):
        raise CifarBenchError(
            f"{pair[0]} and {pair[1]} were evaluated on different test images: evaluate both on the same data"
        )
    return paired_difference(labels_a.tolist(), predictions_a.tolist(), predictions_b.tolist())


def paired_comparison(
    pair: list[str], runs: dict[str, list[dict]], readable: Callable[[dict], bool] | None = None
) -> dict:
    """The accuracy difference of pair[0] minus pair[1] on the same test images, with its interval and McNemar's p,
    for the runs of the first seed both have (else the first seed's run of each). Where they share two seeds or
    more, ``across_seeds`` adds each such seed's difference and McNemar p, and their mean with its interval: what a
    claim about the models rests on, since one pair of runs cannot show how much another seed's runs differ. A
    seed whose predictions cannot be read is left out of it, and named."""
    if len(pair) != 2 or pair[0] == pair[1]:
        raise CifarBenchError(f"--pair takes two different model names, e.g. [cnn,cnn_bn_do] (got {pair})")
    lowest = [first_seed_run(model, runs) for model in pair]
    compared, left_out = [], []
    for seed, first, second in seed_pairs(pair, runs):
        try:
            compared.append((seed, [first, second], same_images_difference(pair, [first, second], readable)))
        except CifarBenchError as error:
            left_out.append((seed, error))
    if compared:
        seed, chosen, result = compared[0]
    elif left_out:
        raise left_out[0][1]
    else:
        seed, chosen, result = None, lowest, same_images_difference(pair, lowest, readable)
    several = [model for model in pair if len(runs[model]) > 1]
    which = f"the runs of seed {seed}, the first both have," if seed is not None else "the first seed's run of each"
    return {
        "first": pair[0],
        "second": pair[1],
        "first_run": chosen[0]["run_name"],  # the run's place under the folder compared, never a local path
        "second_run": chosen[1]["run_name"],
        "note": f"several seeds of {' and '.join(several)}: {which} compared" if several else "",
        **result,
        "across_seeds": across_seeds(compared, [seed for seed, _ in left_out]) if len(compared) > 1 else None,
    }


def across_seeds(compared: list[tuple[int, list[dict], dict]], left_out: list[int]) -> dict:
    """Several seeds' paired differences (each seed's two runs on the same test images) and their mean's interval."""
    differences = [result["difference"] for _, _, result in compared]
    low, high = seeds_difference_interval(differences, [result["se"] for _, _, result in compared])
    return {
        "seeds": [seed for seed, _, _ in compared],
        "differences": differences,
        "mcnemar_p": [result["mcnemar_p"] for _, _, result in compared],
        "difference": sum(differences) / len(differences),
        "ci_low": low,
        "ci_high": high,
        "left_out": left_out,
    }


def seeds_text(seeds: dict) -> str:
    """The comparison across shared seeds as compare and the report say it."""
    per_seed = ", ".join(
        f"{difference:+.4f} ({p_text(p)})" for difference, p in zip(seeds["differences"], seeds["mcnemar_p"])
    )
    names = ", ".join(map(str, seeds["seeds"]))
    left_out = ", ".join(map(str, seeds["left_out"]))
    return (
        f"over seeds {names}, each seed's two runs paired on the same test images: {seeds['difference']:+.4f}, 95% "
        f"CI [{seeds['ci_low']:+.4f}, {seeds['ci_high']:+.4f}] (the seeds' spread and the test images' sampling "
        f"noise); per seed, with McNemar's exact p: {per_seed}"
        + (f"; seed {left_out} left out: its predictions cannot be read" if left_out else "")
    )


def p_text(p: float) -> str:
    """A McNemar p-value as compare and the report give it. Below 1e-300 the exact sum underflows (to 0 for
    thousands of discordant pairs): it is given as that bound, never as p = 0."""
    return "p < 1e-300" if p < 1e-300 else f"p = {p:.3g}"


def mcnemar_p_text(p: float) -> str:
    return f"McNemar exact {p_text(p)}"


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
    seeds = result["across_seeds"]
    return lines + ([f"{result['first']} − {result['second']} {seeds_text(seeds)}"] if seeds else [])
