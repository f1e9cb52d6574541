"""A SIGTERM (docker stop, SLURM preemption, a spot instance going away) ends a fit with the current step
saved over ``last.ckpt``: Lightning alone exited with status 0 and nothing saved since the last epoch.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from cifar_bench.errors import SigtermHandler
from cifar_bench.run_folder import LAST_CHECKPOINT


class SaveOnSigterm(pl.Callback):
    """On SIGTERM, finish the running batch, save that step to ``last.ckpt`` (everything a resumed run needs
    to go on as if uninterrupted) and stop. A SIGTERM during validation, or just before one, is held until it
    ends: Lightning cannot resume a validation mid-way. Further SIGTERMs change nothing.
    """

    def __init__(self) -> None:
        self._lightning_handler = None
        self._validating = self._held = self._noted = self._trained = False

    def _take_over(self, trainer: pl.Trainer) -> None:
        """Stand in front of Lightning's SIGTERM handler (registered as the fit starts running)."""
        if self._lightning_handler is None and threading.current_thread() is threading.main_thread():
            self._lightning_handler = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, self._on_sigterm)
            SigtermHandler.training = True

    def _on_sigterm(self, signum, frame) -> None:
        if self._validating:
            self._held = True
        elif callable(self._lightning_handler):
            self._lightning_handler(signum, frame)

    def on_sanity_check_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._take_over(trainer)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._take_over(trainer)
        if not trainer.fit_loop.restarted_mid_epoch:
            return
        # Lightning restores a loader's saved position only if it first builds the loader after the
        # restore, not when a learning-rate schedule has already asked for the number of steps.
        loader, done = trainer.train_dataloader, trainer.fit_loop.epoch_loop.batch_progress.current.completed
        if hasattr(loader, "load_state_dict"):
            loader.load_state_dict({"epoch": trainer.current_epoch, "batches_served": done})
        for callback in trainer.callbacks:
            if callback is not self:
                callback.on_train_epoch_start(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        self._trained = True

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validating = True
        if trainer.received_sigterm:
            # Noted in the epoch's last training batch, after which Lightning raises only inside this
            # validation, after its first batch: its note is held back until the validation ends.
            trainer._signal_connector.received_sigterm = False
            self._noted = True

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validating = False
        if self._noted:  # given back, not sent again: Lightning's handler already stopped children and told ranks
            self._noted = False
            trainer._signal_connector.received_sigterm = True
        if self._held:
            self._held = False
            self._on_sigterm(signal.SIGTERM, None)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Save the step a SIGTERM stopped at, if this session trained at all (before its first batch the
        ``last.ckpt`` there is already the state to continue from); the exception carries where it went."""
        if isinstance(exception, SIGTERMException):
            last = last_checkpoint_path(trainer)
            exception.saved_to = last if last is not None and self._trained else None
            exception.step = trainer.global_step
            if exception.saved_to is not None:
                # Whole, to resume from; said explicitly, so Lightning logs nothing about it.
                trainer.save_checkpoint(last, weights_only=False)
        SigtermHandler.training = False

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        SigtermHandler.training = False


def last_checkpoint_path(trainer: pl.Trainer) -> Path | None:
    """Where ``--ckpt_path last`` looks: ``last.ckpt`` in the folder of the run's checkpoints (none when
    checkpointing is off)."""
    folders = [c.dirpath for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.dirpath]
    return Path(folders[0]) / LAST_CHECKPOINT if folders else None
