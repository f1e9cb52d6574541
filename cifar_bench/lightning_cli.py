"""The package's LightningCLI: the configs to model, DataModule and Trainer, for ``cifar-bench fit`` and the benchmark alike.

Its own module, below cli.py, so that the benchmark builds runs exactly as the command line does
without importing the command line that dispatches to it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from pytorch_lightning.cli import LightningCLI

from cifar_bench.data import CIFAR10DataModule
from cifar_bench.errors import CifarBenchError
from cifar_bench.models import CifarClassifier


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
