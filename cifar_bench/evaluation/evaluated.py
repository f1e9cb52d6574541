"""The evaluated runs under a folder, as ``compare`` and ``report`` read them, trusting none of it: each ``metrics.json`` (and study failure
marker) is read as a bounded regular file (``read_small_text``) and every field the table, its intervals
or ``--pair`` use is checked for its type and range, so a hostile or damaged file is one error naming it
instead of a traceback, a NaN row or an interval of nonsense."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path

from cifar_bench.errors import CifarBenchError
from cifar_bench.io import read_json_object
from cifar_bench.output import first_link, place
from cifar_bench.run_folder import (
    FAILURE_MARKERS,
    METRICS_FILE,
    Evaluation,
    RunFolder,
    is_count,
    is_duration,
    is_fraction,
    is_integer,
    store_record_problem,
    weights_problem,
)

AGAIN = "run evaluate again, or delete it"
# Counts shown in the table: absent, null or a whole number of at least zero.
COUNTS = tuple(
    "weight_layers epochs_trained trainable_params total_params study_trainable_params study_total_params".split()
)


def _or_null(check):
    return lambda value: value is None or check(value)


# The fields checked where present: (name, the check, what a value failing it is not).
FIELD_CHECKS = (
    *((key, _or_null(is_count), "a whole number") for key in COUNTS),
    ("seed", _or_null(is_integer), "an integer"),
    ("run", lambda run: isinstance(run, str), "a folder name"),
    *((key, _or_null(is_duration), "a duration") for key in ("training_time_s", "feature_store_s")),
)


# Bounds on what a report draws and lays out per class (CIFAR-10 has 10): a file's own sizes never set the cost.
MAX_CLASSES, MAX_CLASS_NAME = 100, 200


def classes_problem(where: str, names: object) -> str | None:
    """Class names (a list, or a dict keyed by them) beyond the bounds, else None."""
    if not isinstance(names, (list, dict)) or len(names) > MAX_CLASSES:
        return f"{where} is not a list of at most {MAX_CLASSES} classes"
    if not all(isinstance(name, str) and len(name) <= MAX_CLASS_NAME for name in names):
        return f"{where} holds a class name that is not text of at most {MAX_CLASS_NAME} characters"
    return None


def split_problem(name: str, split: object) -> str | None:
    if not isinstance(split, dict):
        return f"no {name} split"
    if not is_fraction(split.get("accuracy")):
        return f"{name} accuracy {split.get('accuracy')!r} is not a number from 0 to 1"
    if name == "test" and not (
        is_count(split.get("correct")) and is_count(split.get("images")) and split["correct"] <= split["images"] > 0
    ):
        return f"test counts correct={split.get('correct')!r} of images={split.get('images')!r} are not 0 <= correct <= images, images > 0"
    if "per_class" in split and (problem := classes_problem(f"{name} per_class", split["per_class"])):
        return problem
    matrix = split.get("confusion_matrix")
    if matrix is not None and not (
        isinstance(matrix, list)
        and len(matrix) <= MAX_CLASSES
        and all(isinstance(row, list) and len(row) <= MAX_CLASSES for row in matrix)
    ):
        return f"{name} confusion_matrix is not at most {MAX_CLASSES} by {MAX_CLASSES}"
    return None


def evaluation_problem(metrics: dict) -> str | None:
    """What makes a metrics.json unusable by compare, or None: a model name, per split an accuracy in [0, 1],
    the test split's correct answers out of a positive number of images, and, where present, whole counts,
    an integer seed, a run name, a finite training time of at least zero, and a usable record of the weights
    the run started from."""
    if not isinstance(metrics.get("model"), str):
        return f"model {metrics.get('model')!r} is not a name"
    splits = metrics.get("splits")
    if not isinstance(splits, dict):
        return "no splits"
    for name in ("test", "train"):
        if problem := split_problem(name, splits.get(name)):
            return problem
    if "class_names" in metrics and (problem := classes_problem("class_names", metrics["class_names"])):
        return problem
    odd = next(((key, kind) for key, check, kind in FIELD_CHECKS if key in metrics and not check(metrics[key])), None)
    if odd:
        return f"{odd[0]} {metrics[odd[0]]!r} is not {odd[1]}"
    for key, problem_of in (("feature_store", store_record_problem), ("weights", weights_problem)):
        if metrics.get(key) is not None and (problem := problem_of(metrics[key])):
            return f"{key}: {problem}"
    return None


def read_evaluation(path: Path) -> dict:
    """A metrics.json that ``evaluation_problem`` finds nothing wrong with, else one error naming it."""
    metrics = read_json_object(path, AGAIN)
    problem = evaluation_problem(metrics)
    if problem:
        raise CifarBenchError(f"{path} was not written by cifar-bench evaluate ({problem}): {AGAIN}")
    return metrics


def evaluation_of(run: dict) -> Evaluation:
    """The evaluation folder a run that ``collect`` found was read from."""
    return Evaluation(Path(run["evaluation_folder"]))


def read_failure(path: Path) -> dict:
    """A study's failure marker; the model it names defaults to its folder's name, and must be a name."""
    failure = read_json_object(path, AGAIN)
    failure.setdefault("model", path.parent.name)
    if not isinstance(failure["model"], str):
        raise CifarBenchError(f"{path} names model {failure['model']!r}, not a name: delete it")
    return failure


# Folders kept beside a results table: earlier evidence (results/superseded/, results/store_probes/) and rows that
# stand beside it with a table of their own (results/cnn_family_60_epochs_beside/): not searched for the table's
# runs unless asked for.
SUPERSEDED = "superseded"  # the runs of earlier recipes, kept as history
SET_ASIDE = (SUPERSEDED, "*_probes", "*_beside")


def set_aside(path: Path, directory: Path, patterns: Sequence[str]) -> bool:
    """Whether a folder between ``directory`` and ``path`` is named like one of ``patterns``."""
    return any(
        fnmatch.fnmatchcase(part, pattern) for part in path.relative_to(directory).parts[:-1] for pattern in patterns
    )


def collect(
    directory: Path, layout: str | None = None, skip: Sequence[str] = ()
) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """Evaluated runs and recorded failures under ``directory``, each grouped by model name: every metrics.json
    and failure marker at any depth, or with ``layout`` (e.g. ``*/*``: ``<model>/<run>/``) only there and
    reached through no link; none below a folder named like one of ``skip``. Each run is named by its place
    under ``directory`` (``run_name``: the folder above its evaluation folder), never by the path its
    metrics.json recorded."""

    def found(name: str, pattern: Path | None) -> list[Path]:
        paths = directory.rglob(name) if pattern is None else directory.glob(str(pattern))
        return [
            path
            for path in sorted(paths)
            if not set_aside(path, directory, skip) and (pattern is None or first_link(path, directory) is None)
        ]

    runs: dict[str, list[dict]] = {}
    failures: dict[str, list[dict]] = {}
    layout_path = Path(layout) if layout else None
    metrics_pattern = layout_path and RunFolder(layout_path).evaluation.metrics  # e.g. */*/evaluation/metrics.json
    for path in found(METRICS_FILE, metrics_pattern):
        metrics = read_evaluation(path)
        run_name = place(path.parent.parent, directory)
        runs.setdefault(metrics["model"], []).append(
            {**metrics, "evaluation_folder": str(path.parent), "run_name": run_name}
        )
    for path in found(FAILURE_MARKERS, layout_path and layout_path.with_name(FAILURE_MARKERS)):
        failure = read_failure(path)
        failures.setdefault(failure["model"], []).append(failure)
    return runs, failures


def runs_kept_in(directory: Path, name: str) -> dict[str, list[dict]]:
    """The evaluated runs in ``directory/name/<model>/<run>/`` (evidence kept beside the table: earlier recipes,
    probes), by model; none where that folder is absent or reached through a link."""
    folder = directory / name
    return collect(folder, "*/*")[0] if folder.is_dir() and first_link(folder, directory) is None else {}
