"""Callbacks that break a training run on purpose (a SIGKILL, a NaN weight), for the fault tests."""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl


class KillAt(pl.Callback):
    """Kill the process at ``where`` ('train', 'val' or 'checkpoint') in ``epoch``, batch ``batch``."""

    def __init__(self, where: str, epoch: int, batch: int = 0) -> None:
        self.where, self.epoch, self.batch = where, epoch, batch

    def _kill_if(self, where: str, trainer: pl.Trainer, batch_idx: int = 0) -> None:
        if where == self.where and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._kill_if("train", trainer, batch_idx)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self._kill_if("val", trainer, batch_idx)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self._kill_if("checkpoint", trainer)


class PoisonWeightsAt(pl.Callback):
    """Turn one weight to NaN before a chosen training batch, so the loss becomes NaN there."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            next(pl_module.parameters()).data.fill_(float("nan"))
