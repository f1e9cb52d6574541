"""``compare --pair [A,B]``: two models on the same test images, from the predictions.npz evaluate wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cifar_bench.errors import CifarBenchError
from cifar_bench.reports.evaluation_files import PREDICTIONS_FILE
from cifar_bench.reports.intervals import paired_difference


def first_seed_run(model: str, runs: dict[str, list[dict]]) -> dict:
    """The evaluated run of ``model`` with the lowest seed (runs without a seed last)."""
    if model not in runs:
        known = ", ".join(sorted(runs)) or "none"
        raise CifarBenchError(f"--pair names {model!r}, which has no evaluated run here (models: {known})")
    return min(runs[model], key=lambda run: (run.get("seed") is None, run.get("seed") or 0, run.get("run", "")))


def load_test_predictions(run: dict) -> tuple[np.ndarray, np.ndarray]:
    path = Path(run["evaluation_folder"]) / PREDICTIONS_FILE
    try:
        with np.load(path, allow_pickle=False) as content:
            return content["test_labels"].astype(np.int64), content["test_predictions"].astype(np.int64)
    except (OSError, KeyError, ValueError) as error:
        raise CifarBenchError(
            f"{path} is missing or unreadable ({type(error).__name__}): run evaluate again for {run['run']}"
        )


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
        "first_run": chosen[0]["run"],
        "second_run": chosen[1]["run"],
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
