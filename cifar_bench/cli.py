"""Command line: LightningCLI for fit/validate/test/predict, plus the study's report subcommands.

    cifar-bench fit --config configs/base.yaml --config configs/cnn.yaml --trainer.max_epochs 5
    cifar-bench analyze --data_dir data
    cifar-bench bench --models cnn mlp
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    """LightningCLI whose ``--ckpt_path last`` resumes in the run's own log folder.

    A new run gets a new ``version_N``; Lightning looks for ``last.ckpt`` only in the current
    version's folder, so resuming would otherwise find nothing. Here the TensorBoard logger is
    pointed back at the newest version that has a ``last.ckpt``: logs and checkpoints continue there.
    """

    def before_instantiate_classes(self) -> None:
        if self.subcommand != "fit":
            return
        config = self.config["fit"]
        logger = config.trainer.get("logger")
        if config.get("ckpt_path") != "last" or not logger or not hasattr(logger, "init_args"):
            return
        args = logger.init_args
        if args.get("version") is None and "save_dir" in args:
            args["version"] = latest_version_with_last_checkpoint(Path(args["save_dir"]), args.get("name") or "lightning_logs")


def run_lightning_cli(argv: list[str] | None) -> None:
    """``argv`` None reads sys.argv, as LightningCLI prefers when run from a shell."""
    CifarBenchCLI(
        CifarClassifier,
        CIFAR10DataModule,
        subclass_mode_model=True,
        args=argv,
        parser_kwargs={"prog": "cifar-bench"},
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


def main(argv: list[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else argv
    command = words[0] if words else None
    try:
        if command in EXTRA_COMMANDS:
            EXTRA_COMMANDS[command](words[1:])
        else:
            run_lightning_cli(argv)
    except CifarBenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
