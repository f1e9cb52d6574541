"""One trial: an ordinary fit through the package's LightningCLI, in this process, that never reads the test
batch and tells the trial each validation's accuracy, so the pruner can stop it early."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

import optuna
import pytorch_lightning as pl

from cifar_bench.data import CIFAR10DataModule
from cifar_bench.errors import CifarBenchError
from cifar_bench.sweep.storage import FAILURE
from cifar_bench.training.lightning_cli import CifarBenchCLI, run_lightning_cli

MONITOR = "val/acc"


class TrialFailed(Exception):
    """A trial that failed on its own (a diverging loss, a setting fit refused): recorded, and the sweep goes on."""


class HeldOutData(CIFAR10DataModule):
    """The DataModule of every trial: the test batch is never read, and validation is held-out training images."""

    reads_test = False

    def setup(self, stage: str | None = None) -> None:
        refuse_test_as_judge(self.hparams.val_size)
        super().setup(stage)


def refuse_test_as_judge(val_size: int) -> None:
    if val_size == 0:
        raise CifarBenchError(
            "--data.val_size 0 validates on the test set, which a sweep never reads: keep a held-out validation split"
        )


class ReportToTrial(pl.Callback):
    """Each validation's val/acc to the Optuna trial; when the pruner says so, the fit stops at the epoch's end
    (as a normal end: its run folder is complete) and the trial is recorded as pruned."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial, self.last, self.pruned_after = trial, None, None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(MONITOR)
        if trainer.sanity_checking or value is None:
            return
        self.last = float(value)
        self.trial.report(self.last, step=trainer.current_epoch + 1)
        if self.trial.should_prune():
            self.pruned_after, trainer.should_stop = trainer.current_epoch + 1, True


def run_trial(trial: optuna.Trial, words: list[str]) -> float:
    """Fit with ``words`` (a fit command line); the last validation's accuracy, the one of the weights the run
    ends with (what ``evaluate`` measures of it)."""
    reporter = ReportToTrial(trial)
    try:
        with fit_lines_silenced():
            run_lightning_cli(words, datamodule_class=HeldOutData, callbacks=(reporter,))
        if reporter.last is None:
            raise CifarBenchError(
                f"the fit logged no {MONITOR}: validate at least once (trainer.check_val_every_n_epoch)"
            )
    except CifarBenchError as error:
        trial.set_user_attr(FAILURE, str(error))
        raise TrialFailed(str(error)) from None
    if reporter.pruned_after is not None:
        raise optuna.TrialPruned(f"pruned after epoch {reporter.pruned_after} ({MONITOR} {reporter.last:.4f})")
    return reporter.last


@contextlib.contextmanager
def fit_lines_silenced() -> Iterator[None]:
    """A trial's fit without its lines (seed, devices, model summary, where its run went): the sweep says one
    line a trial. Warnings and errors still show."""
    loggers = [logging.getLogger(name) for name in ("pytorch_lightning", "lightning_fabric")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class OptionsChecked(Exception):
    """Raised once fit's parser has accepted a command line, before anything is built."""


class CheckOptions(CifarBenchCLI):
    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        raise OptionsChecked(self.config[self.subcommand])


def check_fit_options(words: list[str]) -> None:
    """Parse a fit command line as a trial's would be, and nothing more: an option fit does not know, or a value
    it refuses, is fit's own error (jsonargparse's, or one of the package's checks)."""
    try:
        with fit_lines_silenced():
            run_lightning_cli(words, cli_class=CheckOptions, datamodule_class=HeldOutData)
    except OptionsChecked as checked:
        refuse_test_as_judge(checked.args[0].data.val_size)
