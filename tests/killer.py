"""Callbacks that break a training run on purpose (a SIGKILL, a NaN weight), for the fault tests."""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl

from cifar_bench.training import checkpoint_io


class KillAt(pl.Callback):
    """Send the process ``signal_name`` (SIGKILL unless told) at ``where`` ('train' or 'val') in ``epoch``, batch ``batch``."""

    def __init__(self, where: str, epoch: int, batch: int = 0, signal_name: str = "SIGKILL") -> None:
        self.where, self.epoch, self.batch, self.signum = where, epoch, batch, getattr(signal, signal_name)

    def _kill_if(self, where: str, trainer: pl.Trainer, batch_idx: int = 0) -> None:
        if where == self.where and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), self.signum)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._kill_if("train", trainer, batch_idx)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self._kill_if("val", trainer, batch_idx)


class KillWhileWriting(pl.Callback):
    """Kill the process in ``epoch`` once half of the bytes of the checkpoint file ``name`` are written.

    The package's checkpoint IO serialises a checkpoint into memory, then writes the bytes to a hidden
    temporary file beside it that it renames into place: the kill lands in that write, with part of
    the new file on disk, not while the checkpoint dict is being built.
    """

    def __init__(self, epoch: int, name: str = "last.ckpt") -> None:
        self.epoch, self.name = epoch, name

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if trainer.current_epoch != self.epoch:
            return
        atomic_file, name = checkpoint_io.atomic_file, self.name

        @contextmanager
        def killed_halfway(path, **options):
            with atomic_file(path, **options) as handle:
                yield HalfThenDie(handle) if Path(path).name == name else handle

        checkpoint_io.atomic_file = killed_halfway


class HalfThenDie:
    """A file whose first write puts half of its bytes on the disk, then SIGKILLs the process."""

    def __init__(self, handle) -> None:
        self.handle = handle

    def write(self, data) -> None:
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        os.fsync(self.handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)


class PoisonWeightsAt(pl.Callback):
    """Turn one weight to NaN before a chosen training batch, so the loss becomes NaN there."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            next(pl_module.parameters()).data.fill_(float("nan"))


class Pace(pl.Callback):
    """Slow training down to ``seconds`` a batch and write ``epoch batch`` of the last finished batch to
    ``progress``, so that a test can send a real signal in the middle of an epoch, from outside."""

    def __init__(self, progress: str, seconds: float = 0.3) -> None:
        self.progress, self.seconds = Path(progress), seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.seconds)
        partial = self.progress.with_suffix(".partial")
        partial.write_text(f"{trainer.current_epoch} {batch_idx}")
        os.replace(partial, self.progress)


class SignalWhileSaving(pl.Callback):
    """Send this process ``signal_name`` while the checkpoint saved on a SIGTERM is being written: a
    second SIGTERM from an impatient scheduler, or the SIGKILL that ends its grace period."""

    def __init__(self, signal_name: str) -> None:
        self.signum = getattr(signal, signal_name)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if trainer.received_sigterm:
            os.kill(os.getpid(), self.signum)


class FillDisk(pl.Callback):
    """Fill the filesystem holding ``path`` up (a file of zeros there, written until ENOSPC) as ``epoch``'s
    training ends: that epoch's last.ckpt, saved right after, finds the disk full."""

    def __init__(self, path: str, epoch: int) -> None:
        self.path, self.epoch = Path(path), epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            fill(self.path)


def fill(path: Path) -> None:
    """Write zeros to ``path`` until the filesystem is full."""
    with open(path, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(bytes(64 * 1024))
        except OSError:
            pass
        try:
            while True:
                handle.write(b"\0")
        except OSError:
            pass
