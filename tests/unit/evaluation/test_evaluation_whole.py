"""`cifar-bench evaluate` writes its folder whole or not at all: into a new hidden folder beside the run's
``evaluation/``, which takes its place once every file is written. A failure or a Ctrl-C mid-way (here: a
figure that cannot be drawn, after others were written) leaves the earlier evaluation as it was, or none;
a rerun that succeeds keeps what the earlier folder held besides evaluate's own files."""

from __future__ import annotations

import errno
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import copy_run, snapshot
from rich.console import Console

from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation import evaluate as evaluate_module
from cifar_bench.evaluation import evaluation_files
from cifar_bench.evaluation.evaluate import evaluate

FAILURES = {"an error": RuntimeError("the figure cannot be drawn"), "Ctrl-C": KeyboardInterrupt()}


@pytest.fixture
def run(trained_mlp, tmp_path) -> Path:
    return copy_run(trained_mlp, tmp_path / "logs")


@pytest.fixture
def evaluate_run(imbalanced_data):
    def run_evaluate(run: Path, **options) -> dict:
        return evaluate(str(run), data_dir=str(imbalanced_data), batch_size=64, console=Console(file=io.StringIO()),
                        **options)  # fmt: skip

    return run_evaluate


def fail_at_the_third_figure(monkeypatch, failure: BaseException) -> list[Path]:
    """evaluate's figure writer, raising ``failure`` at its third figure (two written, in the new folder)."""
    written, save = [], evaluate_module.save_figure

    def failing(figure, path):
        if len(written) == 2:
            raise failure
        written.append(save(figure, path))
        return written[-1]

    monkeypatch.setattr(evaluate_module, "save_figure", failing)
    return written


def earlier_evaluation(run: Path, evaluate_run) -> None:
    """An evaluation of ``run``, and predict's CSV and files of the user's beside its files."""
    evaluate_run(run)
    (run / "evaluation" / "predictions.csv").write_text("image,predicted\n")
    (run / "evaluation" / "notes.txt").write_text("mine\n")
    (run / "evaluation" / "drafts").mkdir()
    (run / "evaluation" / "drafts" / "plot.png").write_bytes(b"mine")


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failure_mid_way_without_an_earlier_evaluation_leaves_none(run, evaluate_run, monkeypatch, failure):
    before = snapshot(run)
    written = fail_at_the_third_figure(monkeypatch, FAILURES[failure])
    with pytest.raises(type(FAILURES[failure])):
        evaluate_run(run)
    assert len(written) == 2, "the failure came after some files of the evaluation were written"
    assert snapshot(run) == before, "no evaluation folder, and no hidden one either"


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failure_mid_way_keeps_the_earlier_evaluation_as_it_was(run, evaluate_run, monkeypatch, failure):
    earlier_evaluation(run, evaluate_run)
    before = snapshot(run)
    fail_at_the_third_figure(monkeypatch, FAILURES[failure])
    with pytest.raises(type(FAILURES[failure])):
        evaluate_run(run)
    assert snapshot(run) == before


@pytest.mark.parametrize("swap", ["in one step", "by two renames"])
def test_a_rerun_replaces_evaluates_files_whole_and_keeps_everything_else_in_the_folder(
    run, evaluate_run, monkeypatch, swap
):
    earlier_evaluation(run, evaluate_run)
    (run / "evaluation" / "metrics.json").write_text("{}\n")  # evaluate's own: replaced
    if swap == "by two renames":  # a system without renameat2
        monkeypatch.setattr(evaluation_files.ctypes, "CDLL", lambda *args, **kwargs: SimpleNamespace())
    evaluate_run(run)
    folder = run / "evaluation"
    assert json.loads((folder / "metrics.json").read_text())["model"] == "mlp"
    assert (folder / "predictions.csv").read_text() == "image,predicted\n"
    assert (folder / "notes.txt").read_text() == "mine\n"
    assert (folder / "drafts" / "plot.png").read_bytes() == b"mine"
    assert [path.name for path in run.iterdir() if "evaluation" in path.name] == ["evaluation"], "nothing left beside"


def test_an_out_folder_of_the_users_is_never_replaced_and_a_failure_leaves_it_as_it_was(
    run, evaluate_run, monkeypatch, tmp_path
):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    before = snapshot(tmp_path / "mine")
    with monkeypatch.context() as patch:
        fail_at_the_third_figure(patch, RuntimeError("the figure cannot be drawn"))
        with pytest.raises(RuntimeError):
            evaluate_run(run, out=str(out))
    assert snapshot(out) == before
    out_inode = out.stat().st_ino
    evaluate_run(run, out=str(out))
    assert out.stat().st_ino == out_inode and (out / "notes.txt").read_text() == "mine\n"
    assert json.loads((out / "metrics.json").read_text())["model"] == "mlp"
    assert not [path for path in out.iterdir() if path.name.startswith(".")]


def test_a_missing_out_folder_appears_whole(run, evaluate_run, monkeypatch, tmp_path):
    out = tmp_path / "new" / "evaluation"
    with monkeypatch.context() as patch:
        fail_at_the_third_figure(patch, RuntimeError("the figure cannot be drawn"))
        with pytest.raises(RuntimeError):
            evaluate_run(run, out=str(out))
    assert not out.exists() and not [path for path in out.parent.iterdir()]
    evaluate_run(run, out=str(out))
    assert (out / "metrics.json").is_file()


def test_a_write_the_system_refuses_is_one_error_naming_the_folder_not_the_hidden_one(run, evaluate_run, monkeypatch):
    before = snapshot(run)
    fail_at_the_third_figure(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    folder = re.escape(str(run / "evaluation"))
    with pytest.raises(
        CifarBenchError, match=f"^cannot write {folder}: No space left on device; any previous evaluation"
    ):
        evaluate_run(run)
    assert snapshot(run) == before
