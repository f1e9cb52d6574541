"""The evaluated runs under a folder, as ``compare`` and ``report`` read them: every metrics.json that
``evaluate`` wrote (checked to hold what they need), and the failures ``study`` recorded."""

from __future__ import annotations

import json
from pathlib import Path

from cifar_bench.errors import CifarBenchError
from cifar_bench.files import read_small_text
from cifar_bench.reports.evaluate import METRICS_FILE
from cifar_bench.reports.output import first_link

FAILURE_GLOB = "failed-seed*.json"


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(read_small_text(path))
    except (OSError, ValueError, RecursionError) as error:  # RecursionError: nesting too deep to parse
        reason = f"{type(error).__name__}: {error}" if isinstance(error, OSError) else type(error).__name__
        raise CifarBenchError(f"{path} is not readable JSON ({reason}): run evaluate again, or delete it")
    if not isinstance(content, dict):
        raise CifarBenchError(f"{path} holds no JSON object: run evaluate again, or delete it")
    return content


def is_evaluation(metrics: dict) -> bool:
    """Whether a metrics.json holds what compare reads: a model name, and per split its accuracy (and for
    the test split the correct answers out of how many images)."""
    splits = metrics.get("splits")
    if not isinstance(metrics.get("model"), str) or not isinstance(splits, dict):
        return False
    test, train = splits.get("test"), splits.get("train")
    numbers = (int, float)
    return (
        isinstance(test, dict)
        and isinstance(train, dict)
        and isinstance(test.get("accuracy"), numbers)
        and isinstance(train.get("accuracy"), numbers)
        and isinstance(test.get("correct"), int)
        and isinstance(test.get("images"), int)
        and test["images"] > 0
    )


def collect(directory: Path, layout: str | None = None) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """Evaluated runs and recorded failures under ``directory``, each grouped by model name: every metrics.json
    at any depth, or with ``layout`` (e.g. ``*/*``: ``<model>/<run>/``) only there and reached through no link."""
    runs: dict[str, list[dict]] = {}
    failures: dict[str, list[dict]] = {}
    found = directory.rglob(METRICS_FILE) if layout is None else directory.glob(f"{layout}/evaluation/{METRICS_FILE}")
    for path in sorted(found):
        if layout is not None and first_link(path, directory) is not None:
            continue
        metrics = _read_json(path)
        if not is_evaluation(metrics):
            raise CifarBenchError(f"{path} was not written by cifar-bench evaluate: run evaluate again, or delete it")
        runs.setdefault(metrics["model"], []).append({**metrics, "evaluation_folder": str(path.parent)})
    found = (
        directory.rglob(FAILURE_GLOB)
        if layout is None
        else directory.glob(f"{layout.rsplit('/', 1)[0]}/{FAILURE_GLOB}")
    )
    for path in sorted(found):
        failure = _read_json(path)
        failures.setdefault(failure.get("model", path.parent.name), []).append(failure)
    return runs, failures
