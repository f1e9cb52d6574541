"""Runs that meet each other: never two writers on one run folder or one study folder, never two fits in
one version folder, and a lock whose holder died is free again. Real processes, started together."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import CONFIGS, TESTS, cli_args, cli_command, cli_environment, run_cli, wait_for, write_binary_version

pytestmark = pytest.mark.slow


def fit_words(data_dir: Path, logs: Path, *extra: str) -> list[str]:
    return cli_args(
        "fit", "mlp", data_dir, logs, "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false", *extra
    )


def start(words: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cli_command(*words),
        cwd=cwd,
        env=cli_environment(TESTS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


@pytest.fixture
def data_dir(tmp_path) -> Path:
    write_binary_version(tmp_path / "data")
    return tmp_path / "data"


def test_two_fits_started_together_in_one_log_folder_get_a_version_folder_each(data_dir, tmp_path):
    logs = tmp_path / "logs"
    first, second = (start(fit_words(data_dir, logs, "--seed_everything", str(seed)), tmp_path) for seed in (1, 2))
    for process in (first, second):
        _, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors[-3000:]

    versions = sorted((logs / "mlp").glob("version_*"))
    assert [version.name for version in versions] == ["version_0", "version_1"]
    seeds = sorted(config_line(version / "config.yaml", "seed_everything:") for version in versions)
    assert seeds == ["seed_everything: 1", "seed_everything: 2"], "each run folder holds the config of its own run"
    for version in versions:
        (session,) = json.loads((version / "environment.json").read_text())["sessions"]
        assert session["epochs_done"] == 2, "and that run's one session"


def config_line(config: Path, start: str) -> str:
    (line,) = [line for line in config.read_text().splitlines() if line.startswith(start)]
    return line


def test_a_second_fit_resuming_a_run_still_training_stops_with_one_line_until_the_first_is_gone(data_dir, tmp_path):
    logs = tmp_path / "logs"
    progress = tmp_path / "progress"
    pace = "--trainer.callbacks+=" + json.dumps({"class_path": "killer.Pace", "init_args": {"progress": str(progress)}})
    first = start(fit_words(data_dir, logs, "--trainer.max_epochs", "50", pace), tmp_path)
    try:
        wait_for(logs / "mlp/version_0/checkpoints/last.ckpt", first)
        second = run_cli(*fit_words(data_dir, logs, "--ckpt_path", "last"), paths=(TESTS,))
        line = one_error_line(second)
        assert "another cifar-bench fit is writing into" in line and "version_0" in line
        assert first.poll() is None, "the first fit goes on"

        os.killpg(first.pid, signal.SIGKILL)  # its lock goes with it
        first.wait()
        third = run_cli(*fit_words(data_dir, logs, "--ckpt_path", "last", "--trainer.max_epochs", "3"), paths=(TESTS,))
        assert third.returncode == 0, third.stderr[-3000:]
        assert "Restored all states" in third.stdout + third.stderr
        assert [path.name for path in (logs / "mlp").glob("version_*")] == ["version_0"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()


def study_words(root: Path, models: str, epochs: int) -> list[str]:
    return [
        "study", "--models", models, "--seeds", "[0]", "--configs_dir", str(root / "configs"),
        "--save_dir", str(root / "logs"), "--data_dir", str(root / "data"),
        "--", "--trainer.max_epochs", str(epochs), "--data.val_size", "20", "--data.batch_size", "16",
        "--data.download", "false", "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip


def test_a_second_study_on_one_folder_stops_compare_meanwhile_lists_finished_runs_and_a_dead_study_frees_it(
    data_dir, tmp_path
):
    shutil.copytree(CONFIGS, tmp_path / "configs")
    logs = tmp_path / "logs"
    assert run_cli(*study_words(tmp_path, "[mlp]", 2)).returncode == 0
    first = start(study_words(tmp_path, "[mlp,cnn]", 100), tmp_path)
    try:
        wait_for(logs / "cnn/seed0/checkpoints/last.ckpt", first)  # mlp evaluated, cnn training
        second = run_cli(*study_words(tmp_path, "[mlp,cnn]", 100))
        line = one_error_line(second)
        assert "another cifar-bench study is writing into" in line and str(logs) in line

        compared = run_cli("compare", str(logs))
        assert compared.returncode == 0, compared.stderr[-3000:]
        assert "mlp" in compared_models(logs), "the finished run"
        assert "cnn" not in compared_models(logs), "not the one still training"
        assert first.poll() is None, "the first study goes on"

        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    third = run_cli(*study_words(tmp_path, "[mlp,cnn]", 2))
    assert third.returncode == 0, third.stderr[-3000:]
    assert {"cnn", "mlp"} <= compared_models(logs)


def compared_models(logs: Path) -> set[str]:
    return {row.split(",")[0] for row in (logs / "comparison.csv").read_text().splitlines()[1:]}
