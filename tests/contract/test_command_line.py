"""The command line itself: ``cifar-bench --help`` lists every command; each command's options are its
function's parameters (jsonargparse's ``auto_cli``), required ones positional where the command says so;
words after ``--`` go unparsed to ``fit_args`` and bare words to ``inputs``; the console a caller may pass
is no option; a command's module is imported only when it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Optional

import pytest
from conftest import REPO
from rich.console import Console

from cifar_bench.cli import COMMANDS, call_with_options, main

EVERY_COMMAND = ["fit", "validate", "test", "analyze", "evaluate", "predict", "compare", "study", "sweep", "report"]


def command_lines(help_text: str) -> dict[str, list[str]]:
    """The lines of the help that start with a command's name, by command."""
    return {name: [line for line in help_text.splitlines() if line.split()[:1] == [name]] for name in EVERY_COMMAND}


@pytest.mark.slow
def test_help_lists_every_command_on_one_line_with_its_description_and_no_third_party_noise():
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "cifar_bench", "--help"], env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0
    assert result.stderr == ""
    lines = command_lines(result.stdout)
    assert all(len(found) == 1 and len(found[0].split()) > 3 for found in lines.values()), lines
    assert "Compare evaluated runs" in lines["compare"][0]  # compare's docstring
    assert "bench" not in result.stdout.split()


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_both_help_flags_list_the_same_commands(flag, capsys):
    main([flag])
    assert all(len(found) == 1 for found in command_lines(capsys.readouterr().out).values())
    assert list(COMMANDS) == EVERY_COMMAND


def test_no_command_is_one_error_line_listing_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: no command given: choose one of {', '.join(EVERY_COMMAND)}\n"


def test_the_benchmark_is_not_a_cifar_bench_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench"])
    assert exit_info.value.code == 2
    assert "unknown command 'bench'" in capsys.readouterr().err


def test_the_console_a_caller_passes_is_no_option(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(tmp_path), "--console", "x"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: unrecognized arguments: --console x (see cifar-bench compare --help)\n"


def train_every_model(
    models: Optional[list[str]] = None, fit_args: Sequence[str] = (), console: Optional[Console] = None
) -> dict:
    """Like ``study``: what the command line gave it.

    Args:
        models: model configs to run.
        fit_args: arguments for every fit, given after --.
    """
    return {"models": models, "fit_args": list(fit_args)}


def predict_images(ckpt: str, inputs: Optional[list[str]] = None, console: Optional[Console] = None) -> list | None:
    """Like ``predict``: the inputs the command line gave it.

    Args:
        ckpt: a checkpoint.
        inputs: image files, folders and globs.
    """
    return inputs


def compare_runs(directory: str, out: Optional[str] = None) -> tuple[str, str | None]:
    """Like ``compare``: its folder, a required parameter.

    Args:
        directory: folder searched.
        out: where the table goes.
    """
    return directory, out


@pytest.mark.parametrize(
    "words, fit_args",
    [
        (["--models", "[mlp]", "--", "--trainer.max_epochs", "5"], ["--trainer.max_epochs", "5"]),
        (["--models", "[mlp]"], []),
        (["--", "--models", "[cnn]"], ["--models", "[cnn]"]),
    ],
    ids=["options, then fit's", "no double dash", "only fit's, named like the command's own"],
)
def test_the_words_after_a_double_dash_go_unparsed_to_fit_args(words, fit_args):
    assert call_with_options(train_every_model, words, "cifar-bench study")["fit_args"] == fit_args


@pytest.mark.parametrize(
    "words, inputs",
    [
        (["--ckpt", "run", "cat.png", "photos/", "shots/1.jpg"], ["cat.png", "photos/", "shots/1.jpg"]),
        (["--ckpt", "run", "--inputs", "[cat.png]", "photos/"], ["cat.png", "photos/"]),
        (["--ckpt", "run"], None),
    ],
    ids=["bare words", "a list and bare words", "neither: the default"],
)
def test_bare_words_are_added_to_inputs(words, inputs):
    assert call_with_options(predict_images, words, "cifar-bench predict") == inputs


def test_required_parameters_are_positional_where_the_command_says_so():
    assert call_with_options(compare_runs, ["results", "--out", "table"], "cifar-bench compare", positional=True) == (
        "results",
        "table",
    )


def test_importing_the_command_line_imports_no_command_module():
    code = "import sys, cifar_bench.cli; print(*sorted(name for name in sys.modules if name.startswith('cifar_bench')))"
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["cifar_bench", "cifar_bench.cli", "cifar_bench.errors"]
