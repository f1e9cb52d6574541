"""`cifar-bench study` run again after a kill: evaluated runs are skipped, the interrupted one continues
from its last.ckpt in the same folder, and the table ends complete. A Ctrl-C stops the study without
recording a failure or writing a table."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import weakref
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import CONFIGS, REPO, snapshot, wait_for, write_binary_version

from cifar_bench import cli
from cifar_bench.data import CIFAR10DataModule
from cifar_bench.errors import Terminated, hear_every_stop
from cifar_bench.models import CifarClassifier
from cifar_bench.run_folder import RunFolder
from cifar_bench.study import fit_command
from cifar_bench.training import callbacks
from cifar_bench.training.callbacks import RecordEnvironment
from cifar_bench.training.lightning_cli import CifarBenchCLI

EPOCHS, TRAIN_IMAGES, BATCH = 6, 180, 16


def study_command(root: Path, models: str = "[mlp,cnn]", epochs: int = EPOCHS, results: bool = False) -> list[str]:
    return [
        sys.executable, "-m", "cifar_bench", "study", "--models", models, "--seeds", "[0]",
        "--configs_dir", str(root / "configs"), "--save_dir", str(root / "logs"), "--data_dir", str(root / "data"),
        *(("--results", str(root / "results")) if results else ()),
        "--", "--trainer.max_epochs", str(epochs), "--data.val_size", "20", "--data.batch_size", str(BATCH),
        "--data.download", "false", "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip


def listen_to_ctrl_c() -> None:
    """A suite started in the background (nohup, &) passes on an ignored SIGINT: a terminal's study hears it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(root: Path, **study_options) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = study_command(root, **study_options)
    return subprocess.Popen(
        command,
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=listen_to_ctrl_c,
    )


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> dict:
    """A study of mlp then cnn, killed (the whole process group) once cnn has written a last.ckpt, then rerun:
    Python processes training, so every test using it is marked slow."""
    root = tmp_path_factory.mktemp("study")
    write_binary_version(root / "data")
    shutil.copytree(CONFIGS, root / "configs")
    first = start(root, results=True)
    wait_for(root / "logs" / "cnn" / "seed0" / "checkpoints" / "last.ckpt", first)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    results_at_kill = sorted(str(path.relative_to(root / "results")) for path in (root / "results").rglob("*.*"))
    interrupted_at = torch.load(root / "logs" / "cnn" / "seed0" / "checkpoints" / "last.ckpt", weights_only=True)[
        "epoch"
    ]
    mlp_before = snapshot(root / "logs" / "mlp")
    second = start(root, results=True)
    _, errors = second.communicate(timeout=600)
    return {
        "root": root,
        "status": second.returncode,
        "errors": errors.decode(),
        "mlp_before": mlp_before,
        "interrupted_at": interrupted_at,
        "results_at_kill": results_at_kill,
    }


@pytest.mark.slow
def test_the_rerun_finishes_the_study(resumed):
    assert resumed["status"] == 0, resumed["errors"]
    table = (resumed["root"] / "logs" / "comparison.md").read_text()
    assert "| mlp | 1 |" in table and "| cnn | 1 |" in table


@pytest.mark.slow
def test_each_runs_evidence_reaches_results_as_it_is_evaluated_not_at_the_studys_end(resumed):
    """mlp's evidence was in results/ when the study was killed in cnn's training: a run folder may not
    outlive the session, its evidence does."""
    assert "mlp/seed0/evaluation/metrics.json" in resumed["results_at_kill"]
    assert "mlp/seed0/evaluation/predictions.npz" in resumed["results_at_kill"]
    assert not any(path.startswith("cnn/") for path in resumed["results_at_kill"])
    assert (resumed["root"] / "results" / "cnn" / "seed0" / "evaluation" / "metrics.json").is_file()


@pytest.mark.slow
def test_a_finished_and_evaluated_run_is_not_touched_again(resumed):
    assert snapshot(resumed["root"] / "logs" / "mlp") == resumed["mlp_before"]


@pytest.mark.slow
def test_the_interrupted_run_continues_in_its_folder_to_its_last_epoch(resumed):
    run = resumed["root"] / "logs" / "cnn" / "seed0"
    assert resumed["interrupted_at"] < EPOCHS - 1, "the kill came before the last epoch"
    assert len(list(run.glob("events.out.tfevents.*"))) == 2  # one per session, in the same folder
    final = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["epoch"] == EPOCHS - 1
    assert final["global_step"] == EPOCHS * -(-TRAIN_IMAGES // BATCH)
    assert list(resumed["root"].glob("logs/cnn/*")) == [run]


def test_each_session_records_the_commit_it_started_from(tmp_path, monkeypatch):
    """A long run outlives commits made meanwhile: each session keeps the code it imported, not the tree at its end."""
    recorder = RecordEnvironment()
    trainer = SimpleNamespace(
        logger=SimpleNamespace(log_dir=str(tmp_path)), precision="32-true", current_epoch=2, callbacks=[]
    )
    for at_start, at_end in (("aaa", "bbb"), ("bbb", "ccc+changes")):
        monkeypatch.setattr(callbacks, "commit", lambda value=at_start: value)
        recorder.on_fit_start(trainer, None)
        monkeypatch.setattr(callbacks, "commit", lambda value=at_end: value)
        recorder.on_fit_end(trainer, None)
    record = json.loads((tmp_path / "environment.json").read_text())
    assert [session["commit"] for session in record["sessions"]] == ["aaa", "bbb"] and record["commit"] == "bbb"


def test_a_killed_session_still_counts_to_its_last_epoch_end_and_training_time_is_the_sessions_sum(
    tmp_path, monkeypatch
):
    """A SIGKILL runs no hook: the epoch-end rewrite is what the killed session leaves behind."""
    recorder = RecordEnvironment()
    trainer = SimpleNamespace(
        logger=SimpleNamespace(log_dir=str(tmp_path)), precision="32-true", current_epoch=0, callbacks=[]
    )
    clock = iter([100.0, 130.0, 160.0, 1000.0, 1050.0])  # start, two epoch ends (then killed); start, end
    monkeypatch.setattr(callbacks.time, "time", lambda: next(clock))
    monkeypatch.setattr(callbacks, "commit", lambda: "aaa")
    recorder.on_fit_start(trainer, None)
    for epoch in (0, 1):  # Lightning's count at the end of the first and the second epoch
        trainer.current_epoch = epoch
        recorder.on_train_epoch_end(trainer, None)
    trainer.current_epoch = 2
    recorder.on_fit_start(trainer, None)
    recorder.on_fit_end(trainer, None)
    record = json.loads((tmp_path / "environment.json").read_text())
    assert [(s["wall_s"], s["epochs_done"], s["interrupted"]) for s in record["sessions"]] == [
        (60.0, 2, RecordEnvironment.NO_END),
        (50.0, 2, None),
    ]
    assert record["wall_s"] == RunFolder(tmp_path).training_time() == 110.0
    (tmp_path / "environment.json").write_text("{not json")
    assert RunFolder(tmp_path).training_time() is None


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow  # a study process each
@pytest.mark.parametrize("who", ["the terminal's process group", "the training alone", "the study alone"])
def test_a_ctrl_c_stops_the_study_with_a_resume_hint_and_no_failure_or_table(tmp_path, who):
    write_binary_version(tmp_path / "data")
    shutil.copytree(CONFIGS, tmp_path / "configs")
    study = start(tmp_path, models="[cnn]", epochs=100)
    run = tmp_path / "logs" / "cnn" / "seed0"
    try:
        wait_for(run / "checkpoints" / "last.ckpt", study)
        if who == "the training alone":
            os.kill(children(study.pid)[0], signal.SIGINT)
        elif who == "the study alone":
            os.kill(study.pid, signal.SIGINT)  # the study passes it on to the training
        else:
            os.killpg(study.pid, signal.SIGINT)
        _, errors = study.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(study.pid, signal.SIGKILL)  # the group outlives its leader: leave no 100-epoch training behind
        study.wait()
    errors = errors.decode()
    assert study.returncode == 130, errors
    assert (
        errors.strip().splitlines()[-1] == "error: interrupted; the same command run again continues where it stopped"
    )
    assert errors.count("error:") == 1 and "Traceback" not in errors and "weights_only" not in errors  # no noise
    assert (
        not list((tmp_path / "logs").glob("**/failed-seed*.json"))
        and not (tmp_path / "logs" / "comparison.md").exists()
    )
    sessions = json.loads((run / "environment.json").read_text())["sessions"]
    assert [session["interrupted"] for session in sessions] == ["KeyboardInterrupt"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] > 0  # whole, resumable


@pytest.mark.parametrize("stop", [KeyboardInterrupt, Terminated], ids=["Ctrl-C", "SIGTERM"])
def test_a_ctrl_c_or_sigterm_that_lands_in_a_weakref_callback_still_stops_the_command_without_a_traceback(
    stop, monkeypatch, capsys, request
):
    """Python cannot raise from a weakref callback: once a Ctrl-C landed in one, printed as "Exception
    ignored" with its traceback, and the study's training ran on to its last epoch. A SIGTERM between a
    study's runs raises ``Terminated`` and could be lost the same way."""
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)  # Python's own: prints what it is given
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    request.addfinalizer(lambda: [signal.signal(signum, handler) for signum, handler in handlers.items()])
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal's command has it
    with pytest.raises(SystemExit):
        cli.main([])  # every command installs it (and raises Terminated on SIGTERM) first; this one then fails
    installed = sys.unraisablehook
    assert installed.__name__ == "pass_on_a_lost_stop"
    hear_every_stop()
    assert sys.unraisablehook is installed  # a second install wraps nothing twice
    capsys.readouterr()

    class Collected:
        pass

    def stopped_here(reference):
        raise stop

    collected = Collected()
    reference = weakref.ref(collected, stopped_here)
    waited_on = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    request.addfinalizer(waited_on.kill)
    with pytest.raises(stop):
        del collected
        waited_on.wait()  # the command goes on, blocked as a study is while its training runs, and hears the stop
    assert waited_on.poll() is None  # the stop came while it waited, not after
    assert reference() is None and capsys.readouterr().err == ""

    def failed_here(reference):
        raise ValueError("any other error")

    collected = Collected()
    reference = weakref.ref(collected, failed_here)
    del collected
    assert "ValueError: any other error" in capsys.readouterr().err  # printed as Python prints it


def test_a_copied_config_that_kept_its_logger_name_trains_into_its_own_run_folder(tmp_path):
    configs = Path(shutil.copytree(CONFIGS, tmp_path / "configs"))
    (configs / "mlp_copy.yaml").write_text((configs / "mlp.yaml").read_text())  # still "name: mlp"
    run = RunFolder.in_study(tmp_path / "study", "mlp_copy", 0)
    words = fit_command(configs, run, 0, ["--data.data_dir", str(tmp_path)])
    cli = CifarBenchCLI(CifarClassifier, CIFAR10DataModule, subclass_mode_model=True, run=False, args=words[1:])
    assert Path(cli.trainer.logger.log_dir) == run.path


@pytest.mark.slow  # a study process each
@pytest.mark.parametrize("who", ["the study alone", "the training alone"])
def test_a_sigterm_stops_the_study_after_the_training_saved_its_step_with_no_failure_or_table(tmp_path, who):
    """A scheduler's SIGTERM often reaches the study alone (docker stop signals the container's first process):
    the study passes it on instead of dying and leaving the training running without it."""
    write_binary_version(tmp_path / "data")
    shutil.copytree(CONFIGS, tmp_path / "configs")
    study = start(tmp_path, models="[cnn]", epochs=100)
    run = tmp_path / "logs" / "cnn" / "seed0"
    try:
        wait_for(run / "checkpoints" / "last.ckpt", study)
        training = children(study.pid)[0]
        os.kill(training if who == "the training alone" else study.pid, signal.SIGTERM)
        _, errors = study.communicate(timeout=120)
        assert not Path(f"/proc/{training}").exists(), "the training must not outlive the study"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(study.pid, signal.SIGKILL)
        study.wait()
    errors = errors.decode()
    assert study.returncode == 143, errors
    assert errors.strip().splitlines()[-1] == (
        "error: stopped by SIGTERM; the same command run again continues where it stopped"
    )
    assert errors.count("error:") == 1 and "Traceback" not in errors and "weights_only" not in errors  # no noise
    assert (
        not list((tmp_path / "logs").glob("**/failed-seed*.json"))
        and not (tmp_path / "logs" / "comparison.md").exists()
    )
    sessions = json.loads((run / "environment.json").read_text())["sessions"]
    assert [session["interrupted"] for session in sessions] == ["SIGTERM"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] > 0  # whole, resumable
