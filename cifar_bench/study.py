"""``cifar-bench study``: the whole study in one command: train every model, evaluate it, compare, and
write the report (``report``) into the save_dir, and into --results when given.

Each training and each evaluation runs in its own process, so a model that fails (a bad setting, a
missing weights file, a crash, running out of memory) is recorded as failed and the others go on;
the closing comparison lists it as failed. A Ctrl-C or a SIGTERM is not a failure: the study stops,
records nothing as failed and leaves the table as it was.

Each run has a fixed folder, ``<save_dir>/<model>/seed<N>/``, so the same command run again after an
interruption skips evaluated runs, continues an interrupted one from its ``last.ckpt``, and starts
the rest: it ends with the same table as an uninterrupted study.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from rich.console import Console

from cifar_bench.arguments import Seed, refuse_bad_seed
from cifar_bench.configs import BASE_CONFIG, CONFIG_DIR, model_names
from cifar_bench.errors import INTERRUPTED_STATUS, STUDY_CHILD, TERMINATED_STATUS, CifarBenchError, Terminated
from cifar_bench.evaluation.compare import compare
from cifar_bench.io import read_small_bytes, user_path
from cifar_bench.output import copy_small_file, literal_text, output_location, print_plain, unlinked_folder, write_json
from cifar_bench.report.command import report
from cifar_bench.run_folder import Evaluation, RunFolder, portable_config, read_config
from cifar_bench.training.locks import hold_lock

# After a Ctrl-C: how long the child has to stop on the one it heard from the terminal, then to stop on
# one passed on to it (it did not hear one: only the study was signalled), before it is killed.
HEARD_IT_S, SHUTDOWN_S = 5, 60


def cifar_bench(*words: str) -> int:
    """Run a cifar-bench command in a fresh process, its output streaming through; the exit status.

    A SIGTERM to the study (a scheduler stopping it: often the study alone is signalled) is passed on
    to the child, which saves its step and stops; the study then stops on its exit status. The child runs
    with ``-P``: the working folder is not on its import path, so a module planted there named like one the
    package imports is never run (PYTHONPATH, which the user sets, still applies)."""
    child = subprocess.Popen([sys.executable, "-P", "-m", "cifar_bench", *words], env={**os.environ, STUDY_CHILD: "1"})
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signal.SIGTERM))
    try:
        return child.wait()
    except KeyboardInterrupt:
        stop_child(child)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_child(child: subprocess.Popen) -> None:
    """Let an interrupted child stop on its own: a training needs a moment to record its interrupted
    session. Further Ctrl-Cs meanwhile are ignored, so that none leaves the child running alone."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for timeout, next_step in ((HEARD_IT_S, lambda: child.send_signal(signal.SIGINT)), (SHUTDOWN_S, child.kill)):
            try:
                child.wait(timeout=timeout)
                return
            except subprocess.TimeoutExpired:
                next_step()
        child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def study(
    models: Optional[list[str]] = None,
    seeds: tuple[Seed, ...] = (0,),
    configs_dir: Optional[str] = None,
    save_dir: str = "lightning_logs",
    data_dir: Optional[str] = None,
    vgg_weights: Optional[str] = None,
    results: Optional[str] = None,
    fit_args: Sequence[str] = (),
    console: Optional[Console] = None,
) -> list[dict]:
    """Train every model with its config, evaluate each, end with the comparison table and the report
    (report.html, report.md).

    Args:
        models: model configs to run, e.g. [mlp,cnn] (default: all in configs_dir).
        seeds: one run per seed, e.g. [0,1,2]; the seed draws the weights, the validation split and the batch order.
        configs_dir: folder of one YAML per model, and optionally a base.yaml applied over the package's
            (default: the package's configs).
        save_dir: where runs, their evaluations and the comparison go.
        data_dir: folder holding CIFAR-10 (default: the configs' data.data_dir).
        vgg_weights: local VGG16 weights file for the VGG16 models (offline machines).
        results: also copy the evidence (per run, as it is evaluated, its metrics, predictions, summary,
            figures, config with its absolute paths named by their places in the current folder or by their
            names, and environment, no checkpoints; then the comparison) into this folder, e.g. results.
        fit_args: arguments for every `cifar-bench fit`, given after --, e.g. -- --trainer.max_epochs 2.
    """
    console = console or Console()
    for seed in seeds:
        refuse_bad_seed(seed, "--seeds")
    configs_dir, save_dir = user_path(configs_dir) if configs_dir is not None else CONFIG_DIR, user_path(save_dir)
    data_args = ["--data.data_dir", data_dir] if data_dir is not None else []
    # Every model's config is read before anything trains: one that is not a configuration stops the study here.
    configs = {
        model: read_config(configs_dir / f"{model}.yaml", "correct it") for model in chosen_models(configs_dir, models)
    }
    results_dir = output_location(results, folder=True, option="--results") if results is not None else None
    lock = hold_lock(save_dir, "study")  # one study a folder, held until its table, evidence and report are written
    try:
        train_every_run(configs, seeds, configs_dir, save_dir, (data_args, fit_args, vgg_weights), results_dir, console)
        rows = compare(save_dir, console=console)
        write_evidence_and_reports(save_dir, results_dir, data_dir, console)
    finally:
        lock.release()
    print_plain(console, f"Next: tensorboard --logdir {save_dir}, or cifar-bench compare {save_dir} after more runs")
    return rows


def train_every_run(configs: dict, seeds, configs_dir: Path, save_dir: Path, arguments, results_dir, console) -> None:
    """Train and evaluate each model on each seed, model by model, copying each run's evidence as it ends;
    ``arguments``: (data arguments, the user's fit arguments, which come last and so win, VGG16 weights file)."""
    data_args, fit_args, vgg_weights = arguments
    for model, config in configs.items():
        # --vgg_weights applies to the models whose config sets model.init_args.weights (the VGG16 ones).
        init_args = (config.get("model") or {}).get("init_args")
        weights = vgg_weights and isinstance(init_args, dict) and "weights" in init_args
        weights_args = ["--model.init_args.weights", vgg_weights] if weights else []
        for seed in seeds:
            run = RunFolder.in_study(save_dir, model, seed)
            train_and_evaluate(configs_dir, run, seed, [*data_args, *weights_args, *fit_args], console)
            if results_dir is not None and run.evaluation.metrics.is_file():
                # Now, not at the study's end: a run folder may not outlive the session or the machine.
                try:
                    export_run_evidence(run, save_dir, results_dir)
                except CifarBenchError as error:  # the study's end tries again, and says so if it fails
                    print_plain(console, f"{model}, seed {seed}: evidence not copied yet: {error}", style="red")


def write_evidence_and_reports(save_dir: Path, results_dir, data_dir, console) -> None:
    """Copy every run's evidence into ``results_dir`` (if any), then write the report of each folder."""
    folders = [save_dir]
    if results_dir is not None:
        copied = export_evidence(save_dir, results_dir)
        print_plain(console, f"Evidence of {copied} runs copied to {results_dir} (no checkpoints)")
        folders.append(results_dir)
    for folder in folders:
        try:
            report(str(folder), data_dir=data_dir, console=console)
        except CifarBenchError as error:  # every model failed: the table says so, there is nothing to report
            print_plain(console, f"No report: {error}", style="red")


def chosen_models(configs_dir: Path, models: Optional[list[str]]) -> list[str]:
    """The models asked for (default: every config in configs_dir), refused before anything trains if one has no config."""
    known = model_names(configs_dir)
    if not known:
        raise CifarBenchError(f"no model configs (*.yaml) in {configs_dir}: pass a --configs_dir that holds some")
    unknown = [model for model in models or () if model not in known]
    if unknown:
        raise CifarBenchError(f"unknown model {', '.join(unknown)}: choose among {', '.join(known)}")
    return models or known


def fit_command(configs_dir: Path, run: RunFolder, seed: int, settings: list[str]) -> list[str]:
    """``cifar-bench fit`` of one model and seed into its fixed run folder, continued from its last.ckpt if any."""
    save_dir, model = run.path.parent.parent, run.model_name
    base = configs_dir / BASE_CONFIG.name
    own_base = ["--config", str(base)] if base.is_file() and base.resolve() != BASE_CONFIG.resolve() else []
    # The seed also draws the validation split and the batch order (data.seed), not only the weights.
    return [
        # Every fit starts from the package's base.yaml; a configs_dir may add its own over it.
        *("fit", *own_base, "--config", str(configs_dir / f"{model}.yaml")),
        *("--seed_everything", str(seed), "--data.seed", str(seed)),
        # The run folder follows the study's name for the model, whatever logger name its config carries (a
        # copied config that kept "mlp" would otherwise train into mlp's folder, over its last.ckpt).
        *("--trainer.logger.init_args.save_dir", str(save_dir), "--trainer.logger.init_args.name", model),
        *("--trainer.logger.init_args.version", run.path.name),
        *settings,
        *(["--ckpt_path", str(run.last_checkpoint)] if run.last_checkpoint.is_file() else []),
    ]


def forget_failure(marker: Path) -> None:
    """Remove the failure marker of a run a later attempt made good: a file; anything else there is one error."""
    try:
        marker.unlink(missing_ok=True)
    except OSError as error:
        raise CifarBenchError(f"cannot remove {marker} ({error.strerror or error}): remove what is there") from None


def train_and_evaluate(configs_dir: Path, run: RunFolder, seed: int, settings: list[str], console: Console) -> None:
    """Train and evaluate one model and seed, each in its own process, unless it was evaluated already;
    a failure is recorded beside the run (``failed-seed<N>.json``), a Ctrl-C stops the study."""
    folder, marker, last, model = run.path, run.failure_marker, run.last_checkpoint, run.model_name
    if run.evaluation.metrics.is_file():
        forget_failure(marker)
        print_plain(console, f"{model}, seed {seed}: already trained and evaluated in {folder}, skipped")
        return
    console.rule(literal_text(f"{model}, seed {seed}" + (f" (continued from {last})" if last.is_file() else "")))
    command, stage = fit_command(configs_dir, run, seed, settings), "fit"
    status = cifar_bench(*command)
    if status == 0:
        command, stage = ["evaluate", "--ckpt", str(folder)], "evaluate"
        status = cifar_bench(*command)
    if status in (INTERRUPTED_STATUS, -signal.SIGINT):
        raise KeyboardInterrupt  # stop here: no failure recorded, no table of a half-done study
    if status in (TERMINATED_STATUS, -signal.SIGTERM):
        raise Terminated  # as for a Ctrl-C; the fit saved its step, the same command continues from it
    if status == 0:
        forget_failure(marker)
        return
    print_plain(console, f"{model} (seed {seed}) failed in {stage} with exit status {status}", style="red")
    record = {"model": model, "seed": seed, "stage": stage, "exit_status": status, "command": ["cifar-bench", *command]}
    unlinked_folder(marker.parent, folder.parent.parent)
    write_json(marker, {**record, "run": str(folder) if folder.is_dir() else None})


def evidence(run: RunFolder) -> list[Path]:
    """The small files that back an evaluated run: its config, environment, metrics, predictions, summary and figures."""
    evaluation = run.evaluation
    return [
        run.config_file,
        run.environment_file,
        *(evaluation.metrics, evaluation.predictions, evaluation.summary, evaluation.curves),
        *(evaluation.split_file(kind, "test", ".png") for kind in ("confusion", "reliability")),
    ]


def export_run_evidence(run: RunFolder, save_dir: Path, results: Path) -> None:
    """Copy one evaluated run's evidence from save_dir to the same place under results."""
    results.mkdir(parents=True, exist_ok=True)  # the folder named; below it, nothing is written through a link
    for path in evidence(run):
        if path.is_file() or path.is_symlink():
            target = results / path.relative_to(save_dir)
            reader = portable_config if path == run.config_file else read_small_bytes
            copy_small_file(path, save_dir, unlinked_folder(target.parent, results) / target.name, reader)


def export_evidence(save_dir: Path, results: Path) -> int:
    """Copy the evidence of each evaluated run, and the comparison, from save_dir to results."""
    found = save_dir.glob(str(RunFolder(Path("*/*")).evaluation.metrics))  # <model>/<run>/evaluation/metrics.json
    runs = [Evaluation(path.parent).run for path in sorted(found)]
    for run in runs:
        export_run_evidence(run, save_dir, results)
    results.mkdir(parents=True, exist_ok=True)
    for name in ("comparison.md", "comparison.csv"):
        copy_small_file(save_dir / name, save_dir, results / name)
    return len(runs)
