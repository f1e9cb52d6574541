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
import os
import pickle
import re
import sys
import zipfile
from pathlib import Path

from jsonargparse import ArgumentError
from pytorch_lightning.cli import LightningCLI

from cifar_bench.data import CIFAR10DataModule
from cifar_bench.errors import CifarBenchError
from cifar_bench.models import CifarClassifier

TRAINER_COMMANDS = ("fit", "validate", "test", "predict")


def latest_version_with_last_checkpoint(save_dir: Path, name: str) -> int | None:
    """The newest ``version_N`` under save_dir/name holding ``checkpoints/last.ckpt``, if any."""
    versions = []
    for folder in (save_dir / name).glob("version_*"):
        suffix = folder.name.removeprefix("version_")
        if suffix.isdigit() and (folder / "checkpoints" / "last.ckpt").is_file():
            versions.append(int(suffix))
    return max(versions, default=None)


class CifarBenchCLI(LightningCLI):
    """LightningCLI with two conveniences over the configs.

    ``--ckpt_path last`` resumes in the run's own log folder: a new run gets a new ``version_N`` and
    Lightning looks for ``last.ckpt`` only there, so resuming would otherwise find nothing; the
    TensorBoard logger is pointed back at the newest version that has a ``last.ckpt``.

    ``--trainer.enable_progress_bar false`` drops the RichProgressBar that configs/base.yaml adds,
    instead of Lightning refusing the combination.

    Settings Lightning would accept silently or fail on late (zero epochs, a log folder that cannot be
    created) are refused up front with one clear line.
    """

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        # LightningCLI reads the checkpoint's hyperparameters right after parsing: check it first.
        config = self.config.get(self.config.get("subcommand") or "", self.config)
        self._check_checkpoint(config.get("ckpt_path"))

    def before_instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        self._check_trainer_settings(config.trainer)
        if config.trainer.get("enable_progress_bar") is False and config.trainer.get("callbacks"):
            config.trainer.callbacks = [
                callback for callback in config.trainer.callbacks if not callback.class_path.endswith(".RichProgressBar")
            ]
        if self.subcommand == "fit":
            self._resume_in_latest_version(config)

    @staticmethod
    def _check_trainer_settings(trainer) -> None:
        max_epochs = trainer.get("max_epochs")
        if max_epochs is not None and max_epochs < 1:
            raise CifarBenchError(f"--trainer.max_epochs must be at least 1 (got {max_epochs})")
        logger = trainer.get("logger")
        save_dir = getattr(logger, "init_args", {}).get("save_dir") if logger else None
        if save_dir:
            existing = Path(save_dir).absolute()
            while not existing.exists():
                existing = existing.parent
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                raise CifarBenchError(
                    f"cannot write logs under {save_dir}: {existing} is {'not a folder' if not existing.is_dir() else 'not writable'}; "
                    "choose another --trainer.logger.init_args.save_dir"
                )

    @staticmethod
    def _check_checkpoint(ckpt_path: str | None) -> None:
        """A checkpoint path must be a torch.save zip archive; 'last' and 'best' are Lightning's to resolve."""
        if ckpt_path is None or ckpt_path in ("last", "best", "hpc", "registry"):
            return
        path = Path(ckpt_path)
        if not path.is_file():
            raise CifarBenchError(f"checkpoint {ckpt_path} does not exist: pass a .ckpt file, or 'last' to resume")
        if not zipfile.is_zipfile(path):
            raise CifarBenchError(f"checkpoint {ckpt_path} is truncated or not a checkpoint: pass another .ckpt file")

    @staticmethod
    def _resume_in_latest_version(config) -> None:
        logger = config.trainer.get("logger")
        if config.get("ckpt_path") != "last" or not logger or not hasattr(logger, "init_args"):
            return
        args = logger.init_args
        if args.get("version") is None and "save_dir" in args:
            args["version"] = latest_version_with_last_checkpoint(Path(args["save_dir"]), args.get("name") or "lightning_logs")


def run_lightning_cli(argv: list[str] | None) -> CifarBenchCLI:
    """``argv`` None reads sys.argv, as LightningCLI prefers when run from a shell; returns the finished CLI."""
    return CifarBenchCLI(
        CifarClassifier,
        CIFAR10DataModule,
        subclass_mode_model=True,
        args=argv,
        parser_kwargs={"prog": "cifar-bench", "exit_on_error": False},
        save_config_kwargs={"overwrite": True},
    )


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
