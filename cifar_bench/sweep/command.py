"""``cifar-bench sweep``: search a model's recipe with Optuna, each trial an ordinary fit judged on validation.

Every worker runs the same command: workers on one storage share one study, each starting trials until
the study holds ``--trials`` of them (or its ``--timeout`` is spent), and each writes the sweep's files
from the storage when it ends. Run again, the command resumes the study.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Optional

import optuna
from jsonargparse.typing import PositiveFloat, PositiveInt
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState
from rich.console import Console

from cifar_bench.arguments import Seed
from cifar_bench.configs import resolve_config_argument
from cifar_bench.errors import CifarBenchError
from cifar_bench.output import output_location, print_plain
from cifar_bench.sweep.folder import BEST_YAML, TRIALS_CSV, default_sweep_folder
from cifar_bench.sweep.outputs import best_trial, write_outputs
from cifar_bench.sweep.space import SPACES_DIR, fit_words, read_space, space_record, suggest
from cifar_bench.sweep.storage import FAILURE, WORKER, Storage, counted, fail_abandoned, open_study
from cifar_bench.sweep.trial import TrialFailed, check_fit_options, run_trial

PRUNERS = {
    # Not before 2 trials have finished, nor after a trial's first epoch (the noisiest): steps count epochs from 1.
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1),
    "none": optuna.pruners.NopPruner,
}


def sweep(
    model: str,
    trials: PositiveInt = 20,
    timeout: Optional[PositiveFloat] = None,
    storage: Optional[str] = None,
    study_name: Optional[str] = None,
    sampler_seed: Seed = 0,
    pruner: Literal["median", "hyperband", "none"] = "median",
    space: Optional[str] = None,
    out: Optional[str] = None,
    fit_args: Sequence[str] = (),
    console: Optional[Console] = None,
) -> dict:
    """Search a model's recipe with Optuna on validation accuracy (the test split is never read); writes
    best.yaml, trials.csv, summary.json and figures.

    Args:
        model: the model config whose recipe is searched, e.g. mlp (a packaged name or a YAML file).
        trials: trials in the study, all workers together; a rerun or another worker adds only what is missing.
        timeout: seconds after which this worker starts no new trial (the running one finishes).
        storage: Optuna storage: an SQLAlchemy URL (postgresql+psycopg://user@host/db) or a journal file path
            (default: sqlite:///OUT/sweep.db).
        study_name: the study in the storage (default: the model's name); workers on one name share it.
        sampler_seed: seed of the TPE sampler.
        pruner: stops unpromising trials early on their validation accuracy.
        space: the search space file (default: configs/spaces/MODEL.yaml).
        out: the sweep's folder: trial runs, best.yaml, trials.csv, summary.json (default: lightning_logs/sweep/MODEL).
        fit_args: options for every trial's fit, given after --, e.g. -- --data.train_size 5000.
    """
    console = console or Console()
    name = Path(model).stem
    distributions = read_model_space(model, space)
    out = output_location(out if out is not None else default_sweep_folder(name), folder=True)
    study_name = study_name or name
    fit_command = trial_command(resolve_config_argument(model), out, study_name, fit_args)
    for end in (0, -1):  # both ends of every range: fit's parser refuses an unknown option or a value out of its range
        check_fit_options(
            fit_command("trial0") + fit_words({key: ends(dist)[end] for key, dist in distributions.items()})
        )
    optuna.logging.disable_default_handler()  # this command says what happens, once per trial
    if storage is None:
        out.mkdir(parents=True, exist_ok=True)  # for the default SQLite file
    store = Storage(storage, out)
    study = open_study(store, study_name, name, space_record(distributions), sampler_seed, PRUNERS[pruner]())
    runs = out / study_name
    if not study.trials and any(runs.glob("trial*")):
        raise CifarBenchError(f"{runs} holds trials of another study: choose another --out or --study_name")
    abandoned = fail_abandoned(study)
    if abandoned:
        print_plain(
            console,
            f"Trials {', '.join(map(str, abandoned))} were left running by a worker that died: recorded as failed",
        )
    print_plain(console, f"Sweep {study_name!r} of {name}: {trials} trials in {store.shown}, runs in {runs}")
    run_trials(study, store, distributions, fit_command, trials, timeout, console)
    skipped = write_outputs(study, store, out, model, runs)
    return closing_lines(study, store, out, model, skipped, console)


def read_model_space(model: str, space: Optional[str]) -> dict:
    """The search space of ``--space``, or the packaged one of the model (one error line when there is none)."""
    space_file = Path(space) if space is not None else SPACES_DIR / f"{Path(model).stem}.yaml"
    if space is None and not space_file.is_file():
        raise CifarBenchError(
            f"no search space for {Path(model).stem} in {SPACES_DIR}: write one and pass --space FILE (docs/sweep.md)"
        )
    return read_space(space_file)


def ends(distribution) -> tuple:
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[0], distribution.choices[-1]
    return distribution.low, distribution.high


def trial_command(config: str, out: Path, study_name: str, fit_args: Sequence[str]) -> Callable[[str], list[str]]:
    """A trial's fit, into ``<out>/<study_name>/<version>``; the drawn options go last, so they are what ran."""
    return lambda version: [
        *("fit", "--config", config, "--trainer.logger.init_args.save_dir", str(out)),
        *("--trainer.logger.init_args.name", study_name, "--trainer.logger.init_args.version", version),
        *("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"),
        *fit_args,
    ]


def run_trials(study, store: Storage, distributions, fit_command, budget: int, timeout, console: Console) -> None:
    """Start trials, one at a time, until the study holds ``budget`` of them or ``timeout`` has passed."""
    started, durations = time.monotonic(), []
    while timeout is None or time.monotonic() - started < timeout:
        trial_started = time.monotonic()
        number = next_trial(study, store, distributions, fit_command, budget)
        if number is None:
            return
        durations.append(time.monotonic() - trial_started)
        progress(study, number, budget, started, durations, timeout, console)
    print_plain(console, f"Time budget of {timeout:g} s spent: this worker starts no more trials")


def next_trial(study, store: Storage, distributions, fit_command, budget: int) -> int | None:
    """Run the next trial, unless the study holds ``budget`` already; its number. The storage's turn is held from
    the count until the new trial has its number, so the workers of one machine never start one too many."""
    turn, numbers = store.turn(), []
    turn.__enter__()

    def objective(trial: optuna.Trial) -> float:
        numbers.append(trial.number)
        turn.__exit__(None, None, None)
        trial.set_user_attr(WORKER, [socket.gethostname(), os.getpid()])  # whose it is: fail_abandoned
        return run_trial(trial, fit_command(f"trial{trial.number}") + fit_words(suggest(trial, distributions)))

    try:
        if len(counted(study)) >= budget:
            return None
        study.optimize(objective, n_trials=1, catch=(TrialFailed,), gc_after_trial=True)
    finally:
        if not numbers:
            turn.__exit__(None, None, None)
    return numbers[0]


def progress(study, number: int, budget: int, started: float, durations: list[float], timeout, console) -> None:
    """One line a trial: how it ended, the best so far, the time spent and an estimate of the time left."""
    trial = next(trial for trial in study.get_trials(deepcopy=False) if trial.number == number)
    done = sum(trial.state != TrialState.RUNNING for trial in counted(study))
    outcome = {
        TrialState.COMPLETE: lambda: f"val/acc {trial.value:.4f}",
        TrialState.PRUNED: lambda: f"pruned after epoch {max(trial.intermediate_values, default=0)}",
        TrialState.FAIL: lambda: f"failed: {trial.user_attrs.get(FAILURE, 'see the error above')}",
    }[trial.state]()
    best = best_trial(study)
    elapsed = time.monotonic() - started
    left = sum(durations) / len(durations) * max(budget - done, 0)
    if timeout is not None:
        left = min(left, max(timeout - elapsed, 0))
    best_text = f"best {best.value:.4f} (trial {best.number})" if best is not None else "no trial complete yet"
    print_plain(
        console,
        f"Trial {done} of {budget} (number {number}) {outcome}; {best_text}; {clock(elapsed)} elapsed, about {clock(left)} left",
        style="bold",
    )


def clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m{seconds:02d}s" if minutes >= 60 else f"{minutes}m{seconds:02d}s"


def closing_lines(study, store: Storage, out: Path, model: str, skipped: list[str], console: Console) -> dict:
    states = {
        state.name.lower(): n for state in TrialState if (n := len(study.get_trials(deepcopy=False, states=(state,))))
    }
    best = best_trial(study)
    print_plain(console, "Trials: " + ", ".join(f"{n} {state}" for state, n in states.items()))
    if skipped:
        print_plain(console, "Figures not drawn: " + "; ".join(skipped))
    print_plain(
        console,
        f"Results in {out}: trials.csv, summary.json, figures; watch a sweep live: optuna-dashboard {store.shown}",
    )
    if best is None:
        print_plain(console, f"No trial completed: see {out / TRIALS_CSV} for why, then run the same command again")
        return {"best": None}
    print_plain(console, f"Best: trial {best.number}, val/acc {best.value:.4f}, {best.params}")
    print_plain(console, f"Next: cifar-bench fit --config {model} --config {out / BEST_YAML}")
    return {"best": best.number, "value": best.value, "params": best.params}
