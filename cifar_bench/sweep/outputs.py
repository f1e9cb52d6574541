"""What a sweep leaves in its folder, rewritten from the storage whenever a worker ends: the trials table,
a summary, best.yaml (the best recipe as a config overlay) and Optuna's figures. Each file is written
whole or not at all (``output.write_text``), so a worker ending while another reads sees a complete one."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from cifar_bench.output import csv_text, save_figure, write_json, write_text
from cifar_bench.sweep.folder import BEST_YAML, FIGURES, SUMMARY_JSON, TRIALS_CSV
from cifar_bench.sweep.space import as_value, overlay
from cifar_bench.sweep.storage import FAILURE, Storage


def duration_s(trial) -> float | None:
    return None if trial.duration is None else round(trial.duration.total_seconds(), 1)


def best_trial(study: optuna.Study):
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda trial: (trial.value, -trial.number), default=None)


def write_outputs(study: optuna.Study, storage: Storage, out: Path, model: str, run_dir: Path) -> list[str]:
    """Write every output; the names of the figures that could not be drawn, with why."""
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for trial in trials for name in trial.params})
    rows = [
        [trial.number, trial.state.name, trial.value, duration_s(trial)]
        + [trial.params.get(name) for name in names]
        + [trial.user_attrs.get(FAILURE, "")]
        for trial in trials
    ]
    write_text(out / TRIALS_CSV, csv_text(["number", "state", "value", "duration_s", *names, "failure"], rows))
    best = best_trial(study)
    starts = [trial.datetime_start for trial in trials if trial.datetime_start]
    ends = [trial.datetime_complete for trial in trials if trial.datetime_complete]
    summary = {
        "study_name": study.study_name,
        "storage": storage.described(out),
        "model": model,
        "objective": "val/acc of the last validation, to maximise",
        "space": study.user_attrs.get("space"),
        "trials": {state.name: sum(trial.state == state for trial in trials) for state in TrialState},
        "best": None
        if best is None
        else {
            "number": best.number,
            "value": best.value,
            "params": {name: as_value(value) for name, value in best.params.items()},
            "run": str(run_dir / f"trial{best.number}"),
        },
        "trial_time_s": round(sum(duration_s(trial) or 0 for trial in trials), 1),
        "wall_s": round((max(ends) - min(starts)).total_seconds(), 1) if starts and ends else 0.0,
    }
    write_json(out / SUMMARY_JSON, summary)
    if best is not None:
        header = (
            f"# The best trial ({best.number}) of sweep {study.study_name!r}: val/acc {best.value:.4f}.\n"
            f"# cifar-bench fit --config {model} --config {out / BEST_YAML}\n"
        )
        write_text(out / BEST_YAML, header + yaml.safe_dump(overlay(best.params), sort_keys=False))
    return write_figures(study, out)


def write_figures(study: optuna.Study, out: Path) -> list[str]:
    """Optuna's matplotlib figures; one that cannot be drawn yet (too few trials) is skipped and named."""
    from optuna.visualization import matplotlib as figures

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    drawers = {FIGURES[0]: figures.plot_optimization_history, FIGURES[1]: figures.plot_param_importances}
    skipped = []
    for name, draw in drawers.items():
        if name == FIGURES[1] and (len(complete) < 2 or len(complete[0].params) < 2):
            skipped.append(f"{name} (needs 2 complete trials of 2 or more options)")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib figures experimental
                axes = draw(study)
            save_figure(axes.figure, out / name)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            skipped.append(f"{name} ({' '.join(str(error).split())})")
    return skipped
