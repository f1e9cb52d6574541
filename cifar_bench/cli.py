"""Command line: LightningCLI for fit/validate/test/predict, plus the study's report subcommands.

    cifar-bench fit --config configs/base.yaml --config configs/cnn.yaml --trainer.max_epochs 5
    cifar-bench analyze --data_dir data
    cifar-bench evaluate --ckpt lightning_logs/cnn/version_0/checkpoints/last.ckpt
    cifar-bench compare lightning_logs
    cifar-bench study --seeds 0 1 2 -- --trainer.max_epochs 5
    cifar-bench bench --models cnn mlp
"""

from __future__ import annotations

import argparse
import importlib
import pickle
import re
import sys
from pathlib import Path

from jsonargparse import ArgumentError

from cifar_bench.errors import CifarBenchError
# Re-exported: tests and callers import the LightningCLI pieces from here as well.
from cifar_bench.lightning_cli import CifarBenchCLI, latest_version_with_last_checkpoint, run_lightning_cli  # noqa: F401

TRAINER_COMMANDS = ("fit", "validate", "test", "predict")


def run_analyze(argv: list[str]) -> None:
    from cifar_bench.reports.analyze import analyze

    parser = argparse.ArgumentParser(prog="cifar-bench analyze", description="Describe the CIFAR-10 dataset (the study's Part 2).")
    parser.add_argument("--data_dir", default="data", help="folder holding CIFAR-10 or an official archive")
    parser.add_argument("--download", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default="reports/analysis", help="where to write the tables and the sample grid")
    args = parser.parse_args(argv)
    analyze(args.data_dir, args.download, Path(args.out))


def run_bench(argv: list[str]) -> None:
    from cifar_bench.bench import main as bench_main

    bench_main(argv)


EXTRA_COMMANDS = {"analyze": run_analyze, "bench": run_bench}


def report_command(module: str):
    """A subcommand whose module (and its heavier imports) loads only when that subcommand runs."""

    def run(argv: list[str]) -> None:
        importlib.import_module(module).main(argv)

    return run


EXTRA_COMMANDS.update(
    evaluate=report_command("cifar_bench.reports.evaluate"),
    compare=report_command("cifar_bench.reports.compare"),
    study=report_command("cifar_bench.reports.study"),
)


def user_error_in(error: BaseException) -> CifarBenchError | None:
    """The CifarBenchError behind an exception, if any: jsonargparse wraps errors raised while it
    instantiates the model or data module in its own ValueError."""
    while error is not None:
        if isinstance(error, CifarBenchError):
            return error
        error = error.__cause__ or error.__context__
    return None


def parser_error_line(error: ArgumentError) -> str:
    """jsonargparse's message on one line; for a class that failed to validate, only its own reason
    (not the list of every alternative type it tried)."""
    text = str(error)
    key = text.split(":", 1)[0] if text.startswith("Parser key") else ""
    if "Does not validate against any of the Union subtypes" in text and "Errors:" in text:
        listed = text.split("Errors:", 1)[1].split("Given value type:", 1)[0]
        reasons = [r for r in re.split(r"\n\s*- ", "\n" + listed) if r.strip() and "Expected a <class 'NoneType'>" not in r]
        if reasons:
            return " ".join(f"{key}: {reasons[0]}".split())
    return " ".join(text.split())


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else argv
    command = words[0] if words else None
    known = (*TRAINER_COMMANDS, *EXTRA_COMMANDS)
    if command is None or (command not in known and not command.startswith("-")):
        fail(f"{'no command given' if command is None else f'unknown command {command!r}'}: choose one of {', '.join(known)}")
    try:
        if command in EXTRA_COMMANDS:
            EXTRA_COMMANDS[command](words[1:])
        else:
            run_lightning_cli(argv)
    except ArgumentError as error:
        fail(f"{parser_error_line(error)} (see cifar-bench {command} --help)")
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except pickle.UnpicklingError as error:
        reason = str(error).splitlines()[0]
        fail(f"refused to load a checkpoint holding more than tensors and plain values ({reason}); load only files you trust")
    except Exception as error:
        cause = user_error_in(error)
        if cause is None:
            raise
        fail(str(cause))


if __name__ == "__main__":
    main()
