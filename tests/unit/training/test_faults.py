"""Interrupted runs resume exactly; a non-finite loss stops training and keeps the last good checkpoint."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    TESTS,
    cli_args,
    cli_command,
    cli_environment,
    run_cli,
    snapshot,
    tiny_batches,
    write_binary_version,
)
from killer import fill
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    write_binary_version(root, tiny_batches(per_batch=60))
    return root


def fit(data_dir: Path, logs: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    """A small but complete cnn_bn_do run (augmentation, Dropout, BatchNorm) in its own process."""
    words = cli_args(
        "fit", "cnn_bn_do", data_dir, logs,
        "--model.widths", "[8, 16, 16]", "--model.hidden", "[32, 32]",
        "--trainer.max_epochs", "3", "--trainer.deterministic", "true", "--trainer.enable_progress_bar", "false",
        "--trainer.logger.init_args.name", name,
        *extra,
        val_size=40, batch_size=16, eval_batch_size=20,
    )  # fmt: skip
    return run_cli(*words, paths=(TESTS,), timeout=300)


def final_state(logs: Path, name: str) -> dict:
    checkpoint = torch.load(logs / name / "version_0/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    return {"epoch": checkpoint["epoch"], "step": checkpoint["global_step"], "weights": checkpoint["state_dict"]}


def logged_epoch_metrics(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every train/ and val/ scalar of a run folder (all its sessions' event files): (step, value) each."""
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(event.step, event.value) for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
        if tag.startswith(("train/", "val/"))
    }


def callback(class_name: str, **init_args) -> str:
    return "--trainer.callbacks+=" + json.dumps({"class_path": f"killer.{class_name}", "init_args": init_args})


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory) -> dict:
    logs = tmp_path_factory.mktemp("logs")
    result = fit(data_dir, logs, "uninterrupted")
    assert result.returncode == 0, result.stderr[-2000:]
    return {**final_state(logs, "uninterrupted"), "metrics": logged_epoch_metrics(logs / "uninterrupted/version_0")}


def assert_resumes_like_the_uninterrupted_run(data_dir: Path, logs: Path, uninterrupted: dict) -> None:
    resumed = fit(data_dir, logs, "run", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Restored all states" in resumed.stdout + resumed.stderr

    final = final_state(logs, "run")
    assert (final["epoch"], final["step"]) == (uninterrupted["epoch"], uninterrupted["step"])
    for key, tensor in uninterrupted["weights"].items():
        assert torch.equal(final["weights"][key], tensor), key
    assert [p.name for p in (logs / "run").glob("version_*")] == ["version_0"], (
        "resume must continue in the same folder"
    )


@pytest.mark.parametrize("where, epoch, batch", [("train", 1, 2), ("val", 1, 1)], ids=["mid-epoch", "mid-validation"])
def test_a_killed_run_resumed_from_last_ends_exactly_like_an_uninterrupted_one(
    data_dir, tmp_path, uninterrupted, where, epoch, batch
):
    killed = fit(data_dir, tmp_path, "run", callback("KillAt", where=where, epoch=epoch, batch=batch))
    assert killed.returncode == -9, "the run should have been killed"
    assert_resumes_like_the_uninterrupted_run(data_dir, tmp_path, uninterrupted)


def test_a_run_killed_while_writing_last_ckpt_keeps_the_previous_one_and_resumes_exactly(
    data_dir, tmp_path, uninterrupted
):
    killed = fit(data_dir, tmp_path, "run", callback("KillWhileWriting", epoch=1))
    assert killed.returncode == -9, "the run should have been killed"
    assert_only_half_of_the_new_last_ckpt_was_written(tmp_path / "run/version_0/checkpoints")
    assert_resumes_like_the_uninterrupted_run(data_dir, tmp_path, uninterrupted)


def assert_only_half_of_the_new_last_ckpt_was_written(checkpoints: Path) -> None:
    """The kill came in the middle of the write, into a hidden file beside last.ckpt, still epoch 0's."""
    (half_written,) = checkpoints.glob(".last.ckpt.*.partial")
    last = checkpoints / "last.ckpt"
    assert 0 < half_written.stat().st_size < last.stat().st_size
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0, "last.ckpt must still be epoch 0's"


def test_a_nan_loss_stops_training_with_one_error_line_and_keeps_the_last_good_checkpoint(data_dir, tmp_path):
    broken = fit(data_dir, tmp_path, "nan", callback("PoisonWeightsAt", epoch=1, batch=2))
    assert broken.returncode == 2
    error_lines = [line for line in broken.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "Traceback" not in broken.stderr
    assert "became nan at epoch 1, step 2" in error_lines[0]

    last = tmp_path / "nan/version_0/checkpoints/last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 0, "last.ckpt must still be the good one from the end of epoch 0"
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values() if t.is_floating_point())
    assert str(last.parent) in error_lines[0]


def start_fit(data_dir: Path, logs: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    """The run of ``fit`` started in the background at 0.3 s a batch (with its progress bar, as a user
    runs it); returns the process and the file where it says which batch it finished last."""
    progress = logs / "progress"
    words = cli_args(
        "fit", "cnn_bn_do", data_dir, logs,
        "--model.widths", "[8, 16, 16]", "--model.hidden", "[32, 32]",
        "--trainer.max_epochs", "3", "--trainer.deterministic", "true",
        "--trainer.logger.init_args.name", "run",
        callback("Pace", progress=str(progress)), *extra,
        val_size=40, batch_size=16, eval_batch_size=20,
    )  # fmt: skip
    process = subprocess.Popen(
        cli_command(*words), env=cli_environment(TESTS), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return process, progress


def sigterm_mid_epoch(process: subprocess.Popen, progress: Path, epoch: int = 1, batch: int = 4) -> str:
    """Send SIGTERM from outside once the run has finished ``batch`` of ``epoch`` (of 17); its stderr."""
    deadline = time.monotonic() + 120
    while not progress.is_file() or tuple(map(int, progress.read_text().split())) < (epoch, batch):
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the run never reached the batch"
        time.sleep(0.05)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=60)
    assert time.monotonic() - sent < 10, "a SIGTERM must stop the run within seconds"
    return errors


@pytest.mark.parametrize("epoch", [1, 2], ids=["before any validation", "after a validation"])
def test_a_sigterm_mid_epoch_saves_that_step_says_how_to_continue_and_resumes_exactly(
    data_dir, tmp_path, uninterrupted, epoch
):
    """cnn_bn_do validates after every 2nd epoch: in epoch 2 the validation loop's saved progress counts the
    batches of epoch 1's validation, which Lightning keeps above its total (zeroed as epoch 2 began)."""
    process, progress = start_fit(data_dir, tmp_path)
    errors = sigterm_mid_epoch(process, progress, epoch=epoch)

    assert process.returncode == 143, errors[-2000:]
    (line,) = [line for line in errors.splitlines() if line.startswith("error:")]
    assert "SIGTERM" in line and "--ckpt_path last" in line and "Traceback" not in errors
    run = tmp_path / "run/version_0"
    saved = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    stopped_after = int(progress.read_text().split()[1])
    assert (saved["epoch"], saved["global_step"]) == (epoch, 17 * epoch + stopped_after + 1), "the step it stopped at"
    session = json.loads((run / "environment.json").read_text())["sessions"][-1]
    assert session["interrupted"] == "SIGTERM" and session["epochs_done"] == epoch

    assert_resumes_like_the_uninterrupted_run(data_dir, tmp_path, uninterrupted)
    assert logged_epoch_metrics(run) == uninterrupted["metrics"], "the interrupted epoch's metrics too"


@pytest.mark.parametrize("second", ["SIGTERM", "SIGKILL"])
def test_a_second_signal_while_the_sigterm_checkpoint_is_written_leaves_a_last_ckpt_that_resumes_exactly(
    data_dir, tmp_path, uninterrupted, second
):
    """A second SIGTERM (an impatient scheduler) lets the save finish; a SIGKILL (the end of the grace
    period) in the middle of the write leaves the previous last.ckpt, of epoch 0."""
    during_save = (
        callback("SignalWhileSaving", signal_name="SIGTERM")
        if second == "SIGTERM"
        else callback("KillWhileWriting", epoch=1)
    )
    process, progress = start_fit(data_dir, tmp_path, during_save)
    errors = sigterm_mid_epoch(process, progress)

    checkpoints = tmp_path / "run/version_0/checkpoints"
    if second == "SIGTERM":
        assert process.returncode == 143, errors[-2000:]
        saved = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
        assert saved["epoch"] == 1 and saved["global_step"] > 17
    else:
        assert process.returncode == -9, errors[-2000:]
        assert_only_half_of_the_new_last_ckpt_was_written(checkpoints)
    assert_resumes_like_the_uninterrupted_run(data_dir, tmp_path, uninterrupted)


def test_a_disk_that_fills_stops_the_run_with_one_line_keeps_last_ckpt_and_the_reports_and_resumes_exactly(
    data_dir, small_disk, uninterrupted
):
    filler = small_disk / "filler"
    full = fit(data_dir, small_disk, "run", callback("FillDisk", path=str(filler), epoch=1))
    line = one_error_line(full)
    checkpoints = small_disk / "run/version_0/checkpoints"
    assert "No space left on device" in line and str(checkpoints / "last.ckpt") in line
    assert torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 0
    assert not list(checkpoints.glob(".*.partial")), "no half-written file left behind"

    filler.unlink()
    assert_resumes_like_the_uninterrupted_run(data_dir, small_disk, uninterrupted)

    evaluated = run_cli("evaluate", "--ckpt", str(small_disk / "run/version_0"))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    reports = small_disk / "run/version_0/evaluation"
    before = snapshot(reports)
    fill(filler)
    line = one_error_line(run_cli("evaluate", "--ckpt", str(small_disk / "run/version_0")))
    assert "No space left on device" in line and str(reports) in line
    assert snapshot(reports) == before, "the previous reports stay as they were"


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize(
    "where, batch", [("val", 0), ("train", 16)], ids=["during validation", "in the last training batch before it"]
)
def test_a_sigterm_during_validation_lets_it_finish_saves_the_epoch_end_and_resumes_exactly(
    data_dir, tmp_path, uninterrupted, where, batch
):
    """Lightning cannot resume a validation mid-way: the SIGTERM waits for it (2 batches here) to end, also
    one that came in the epoch's last training batch (17 here), which Lightning notes but only acts on
    inside the validation that follows."""
    stopped = fit(
        data_dir, tmp_path, "run", callback("KillAt", where=where, epoch=1, batch=batch, signal_name="SIGTERM")
    )
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    saved = torch.load(tmp_path / "run/version_0/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 2 * 17, "the whole of epoch 1, its validation included"
    assert_resumes_like_the_uninterrupted_run(data_dir, tmp_path, uninterrupted)
    assert logged_epoch_metrics(tmp_path / "run/version_0") == uninterrupted["metrics"]
