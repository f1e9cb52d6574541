"""A sweep's folder, said once: what ``sweep`` writes there and how ``report`` reads it back. Read back, the
folder is untrusted (results may come from anyone): bounded reads, every field checked, one error line."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from cifar_bench.errors import CifarBenchError
from cifar_bench.io import read_json_object, read_small_text
from cifar_bench.output import first_link

SWEEPS_FOLDER = "sweep"  # <root>/sweep/<model>/: lightning_logs/sweep/mlp by default, results/sweep/mlp as evidence
TRIALS_CSV, SUMMARY_JSON, BEST_YAML = "trials.csv", "summary.json", "best.yaml"
FIGURES = ("optimization_history.png", "param_importances.png")
STATES = ("RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING")
FIXED_COLUMNS = ("number", "state", "value", "duration_s")


def default_sweep_folder(model: str) -> str:
    return f"lightning_logs/{SWEEPS_FOLDER}/{model}"


def sweep_folders(root: Path) -> dict[str, Path]:
    """The sweeps under ``root/sweep/``, by the model name of their folder (one holding a summary); one whose
    summary or trials are reached through a link, from ``root`` down, is not read."""
    folders = sorted((root / SWEEPS_FOLDER).glob(f"*/{SUMMARY_JSON}")) if (root / SWEEPS_FOLDER).is_dir() else []
    return {
        summary.parent.name: summary.parent
        for summary in folders
        if first_link(summary, root) is None and first_link(summary.parent / TRIALS_CSV, root) is None
    }


def read_sweep(folder: Path) -> dict:
    """A sweep's summary with its trials: {'study_name', 'model', 'trials': {state: n}, 'best': {'number',
    'value', 'params'} or None, 'trial_time_s', 'wall_s', 'rows': [{'number', 'state', 'value', 'duration_s',
    'params': {name: text}}]}; anything malformed is one error naming the file."""
    advice = "rerun the sweep (it rewrites its files from its storage) or remove the folder"
    summary = read_json_object(folder / SUMMARY_JSON, advice)
    try:
        counts = {state: summary["trials"].get(state, 0) for state in STATES}
        best = summary["best"]
        checked = {
            "study_name": text(summary["study_name"]),
            "model": text(summary["model"]),
            "trials": {state: whole(n) for state, n in counts.items()},
            "best": None
            if best is None
            else {
                "number": whole(best["number"]),
                "value": finite(best["value"]),
                "params": {text(name): value for name, value in best["params"].items() if scalar(value)},
            },
            "trial_time_s": finite(summary["trial_time_s"]),
            "wall_s": finite(summary["wall_s"]),
        }
        checked["rows"] = read_trials(folder / TRIALS_CSV)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise CifarBenchError(f"{folder / SUMMARY_JSON} or its {TRIALS_CSV} is malformed ({error!r}): {advice}")
    return checked


def read_trials(path: Path) -> list[dict]:
    try:
        header, *lines = csv.reader(io.StringIO(read_small_text(path), newline=""))
    except (OSError, ValueError, csv.Error) as error:  # csv.Error: e.g. a field over csv's size limit
        raise ValueError(f"{path.name} unreadable: {error!r}")
    if tuple(header[: len(FIXED_COLUMNS)]) != FIXED_COLUMNS or header[-1] != "failure":
        raise ValueError(f"{path.name} has other columns than a sweep writes")
    rows = []
    for row in lines:
        if len(row) != len(header) or row[1] not in STATES:
            raise ValueError(f"{path.name} row {len(rows) + 1} does not match its header")
        rows.append(
            {
                "number": whole(int(row[0])),
                "state": row[1],
                "value": finite(float(row[2])) if row[2] else None,
                "duration_s": finite(float(row[3])) if row[3] else None,
                "params": dict(zip(header[4:-1], row[4:-1])),
            }
        )
    return rows


def text(value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not text")
    return value


def whole(value) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value


def finite(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


def scalar(value) -> bool:
    """A drawn value: text, a number, or a list of them (a categorical's choice such as layer widths)."""
    if isinstance(value, list) and len(value) <= 64:
        return all(map(scalar, value))
    if isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value)):
        return True
    raise TypeError(f"{value!r} is not a setting's value")
