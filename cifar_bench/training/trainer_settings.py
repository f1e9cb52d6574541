"""Trainer settings Lightning accepts and then fails on late (after the run folder is written), or trains
nothing with: refused up front, each as one error line naming the option."""

from __future__ import annotations

import os
from pathlib import Path

from cifar_bench.errors import CifarBenchError
from cifar_bench.run_folder import is_number

# Settings that must be at least 1 where given (0 divides by zero in Lightning's loop, or trains nothing).
AT_LEAST_ONE = ("max_epochs", "check_val_every_n_epoch")
# Settings that must be above 0 where given (a fraction of the batches or a count of them).
ABOVE_ZERO = ("val_check_interval", "limit_train_batches", "max_steps")


def check_trainer_settings(trainer) -> None:
    """The Trainer's settings as parsed (``config.trainer``), checked before anything is built; only numbers
    (val_check_interval may also be a time, "00:00:05:00", left to Lightning)."""
    for name in AT_LEAST_ONE:
        value = trainer.get(name)
        if is_number(value) and value < 1:
            raise CifarBenchError(f"--trainer.{name} must be at least 1 (got {value})")
    for name in ABOVE_ZERO:
        value = trainer.get(name)
        if is_number(value) and value <= 0 and not (name == "max_steps" and value == -1):  # -1: no step limit
            raise CifarBenchError(f"--trainer.{name} must be above 0 (got {value})")
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
