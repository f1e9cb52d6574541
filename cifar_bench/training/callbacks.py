"""Training-plumbing pieces Lightning lacks: a non-finite-loss stop, exact-resume RNG state, a progress bar
without the logger version, validation figures in TensorBoard, and a closing summary of where a fit left
its results."""

from __future__ import annotations

import os
import random
import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from cifar_bench.environment import commit, machine
from cifar_bench.errors import CifarBenchError
from cifar_bench.features.feeding import FeatureStoreFeeder
from cifar_bench.figures import confusion_figure, prediction_grid_figure
from cifar_bench.output import escaped, write_json
from cifar_bench.run_folder import RunFolder
from cifar_bench.training.preemption import last_checkpoint_path


class ValidationFigures(pl.Callback):
    """Each validation epoch's confusion matrix and sample predictions as TensorBoard images.

    The model computes the numbers (``last_val_confusion``, ``sample_batch``); drawing them is the Trainer's
    business, so no LightningModule imports matplotlib. ``on_validation_end`` runs after the model's own
    epoch-end hook, when the epoch's matrix is there.
    """

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        confusion, pl_module.last_val_confusion = getattr(pl_module, "last_val_confusion", None), None
        if confusion is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if not isinstance(trainer.logger, TensorBoardLogger):
            return
        experiment, step, names = trainer.logger.experiment, pl_module.current_epoch, pl_module.class_names
        experiment.add_figure("val/confusion_matrix", confusion_figure(confusion.cpu(), names), step)
        if pl_module.sample_batch is not None:
            images, labels = pl_module.sample_batch
            predictions = pl_module.predict_logits(images).argmax(dim=1)
            experiment.add_figure(
                "val/sample_predictions", prediction_grid_figure(images, predictions, labels, names), step
            )


class StopOnNonFiniteLoss(pl.Callback):
    """Stop training with a clear message when the training loss becomes NaN or infinite.

    The check stays on the device: each step folds "is this loss finite" into a flag and remembers the
    first bad step, and the host looks at the flag only every ``check_every`` steps and at epoch end,
    so training pays no per-step synchronisation. Raising before the epoch ends means no checkpoint
    of the broken weights is written: the last good ``last.ckpt`` stays as it was.
    """

    def __init__(self, check_every: int = 50) -> None:
        self.check_every = check_every
        self._first_bad: torch.Tensor | None = None
        self._bad_value: torch.Tensor | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_bad = torch.full((), -1, dtype=torch.long, device=pl_module.device)
        self._bad_value = torch.zeros((), device=pl_module.device)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        loss = loss.detach().float()
        newly_bad = ~torch.isfinite(loss) & (self._first_bad < 0)
        self._first_bad = torch.where(newly_bad, torch.full_like(self._first_bad, batch_idx), self._first_bad)
        self._bad_value = torch.where(newly_bad, loss, self._bad_value)
        if (batch_idx + 1) % self.check_every == 0:
            self._raise_if_bad(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._raise_if_bad(trainer)

    def _raise_if_bad(self, trainer: pl.Trainer) -> None:
        first_bad = int(self._first_bad)
        if first_bad < 0:
            return
        folder = getattr(trainer.checkpoint_callback, "dirpath", None) or "nowhere (checkpointing is off)"
        raise CifarBenchError(
            f"training loss became {float(self._bad_value)} at epoch {trainer.current_epoch}, step {first_bad} of the "
            f"epoch; stopped without saving, the checkpoints of the last good epoch stay in {folder}. "
            "Lower the learning rate or check the data"
        )


class RestoreRandomState(pl.Callback):
    """Save the RNG states in every checkpoint and restore them on resume.

    Augmentation, Dropout and the feature store's view draw draw from the global generators; without
    this a resumed run would draw different numbers than an uninterrupted one from the same epoch.

    Everything is stored as tensors and plain Python values, so checkpoints still load with
    ``weights_only=True``.
    """

    def state_dict(self) -> dict[str, Any]:
        name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": (
                name,
                torch.from_numpy(keys.astype(np.int64)),
                int(position),
                int(has_gauss),
                float(cached_gaussian),
            ),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    # What restoring a state that is not one this callback saved raises.
    FAULTS = (AttributeError, IndexError, KeyError, RuntimeError, TypeError, ValueError)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The states as saved (a resumed fit checked them where the checkpoint entered, ``resume_state``); a
        checkpoint holding anything else there is one error, not a traceback."""
        try:
            self.restore(state_dict)
        except self.FAULTS as error:
            raise CifarBenchError(
                f"the checkpoint's random-number state is not one cifar-bench saved ({type(error).__name__}): "
                "resume from a checkpoint the run wrote"
            ) from None

    @staticmethod
    def restore(state: dict[str, Any], into_new_generators: bool = False) -> None:
        """Set the generators to ``state``; ``into_new_generators``: new ones, never the process's, to learn
        before anything is written whether it is one this callback saved (each generator checks its own)."""
        if into_new_generators:
            set_torch, set_python, set_numpy = (
                torch.Generator().set_state,
                random.Random().setstate,
                np.random.RandomState().set_state,
            )
            set_cuda = new_cuda_generators
        else:
            set_torch, set_python, set_numpy, set_cuda = (
                torch.set_rng_state,
                random.setstate,
                np.random.set_state,
                torch.cuda.set_rng_state_all,
            )
        set_torch(state["torch"])
        set_python(state["python"])
        name, keys, position, has_gauss, cached_gaussian = state["numpy"]
        set_numpy((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
        if "cuda" in state and torch.cuda.is_available():
            set_cuda(state["cuda"])


def new_cuda_generators(states: list[torch.Tensor]) -> None:
    """``states`` set into a new generator of each device, as ``torch.cuda.set_rng_state_all`` sets them into the
    process's (one more than there are devices fails there only once CUDA starts)."""
    if len(states) > torch.cuda.device_count():
        raise IndexError(f"{len(states)} CUDA random states for {torch.cuda.device_count()} devices")
    for index, state in enumerate(states):
        torch.Generator(device=f"cuda:{index}").set_state(state)


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar without ``v_num`` (the version, shown as ``0.000``): the run folder
    is printed when the fit ends."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class RunSummary(pl.Callback):
    """When a fit ends, say where its results went and what to run next."""

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        checkpoints = [callback for callback in trainer.callbacks if isinstance(callback, ModelCheckpoint)]
        best = next(
            (c for c in checkpoints if c.monitor and c.best_model_path and c.best_model_score is not None), None
        )
        last = last_checkpoint_path(trainer)
        last = last if last is not None and last.is_file() else None
        # The logger's own log_dir: Trainer.log_dir broadcasts, a collective rank 0 alone would wait on under DDP.
        lines = [
            f"Run folder: {trainer.logger.log_dir}"
            if trainer.logger is not None
            else "No logger: no run folder was written"
        ]
        if best is not None:
            lines.append(f"Best checkpoint ({best.monitor} {float(best.best_model_score):.4f}): {best.best_model_path}")
        if last is not None:
            lines.append(f"Last checkpoint: {last}")
        evaluated = best.best_model_path if best is not None else last
        if evaluated:  # a path, as one shell word: the line is there to be pasted
            word = shlex.quote(str(evaluated))
            lines.append(f"Next: make evaluate CKPT={word}   (or: cifar-bench evaluate --ckpt {word})")
        print("\n".join(map(escaped, lines)), flush=True)  # a path restored from a checkpoint's state: untrusted


class RecordEnvironment(pl.Callback):
    """Write ``environment.json`` into the run folder: commit, versions, machine, precision, pretrained
    ``weights`` if any, and each fit session's wall time (rewritten at every epoch end, so a killed session
    still counts to its last epoch); ``wall_s``, the sessions' sum, is the run's training time everywhere."""

    NO_END = "no end recorded"

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # The session's clock starts before any callback's on_fit_start, so that a feature store built or opened
        # there (FeatureStoreFeeder, listed before this callback or not) counts within wall_s, as feature_store_s says.
        self._clock, self._cpu_clock = time.time(), time.process_time()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The logger's folder, not Trainer.log_dir: that broadcasts.
        log_dir = getattr(trainer.logger, "log_dir", None)
        self._run = RunFolder(Path(log_dir)) if log_dir is not None else None
        read = self.__dict__.pop("_read", None)  # read as the command line took the run folder, if it did
        self._earlier = read[1] if read is not None and read[0] == log_dir else self.earlier_sessions(self._run)
        self._started, self._commit = self.__dict__.pop("_clock", time.time()), commit()
        self._cpu_started = self.__dict__.pop("_cpu_clock", time.process_time())
        # The weights the run started from, recorded by its first session: a resumed one loads them again
        # before the checkpoint replaces them, and a run begun before they were recorded stays without.
        recorded = getattr(pl_module, "weights_record", None)
        self._weights = recorded() if recorded is not None and not self._earlier["sessions"] else None

    @staticmethod
    def earlier_sessions(run: RunFolder | None) -> dict:
        """The run's environment.json (a resumed run), its sessions before this one: one that holds no record of
        them is one error line."""
        resumed = run is not None and run.environment_file.is_file()
        return run.read_environment() if resumed else {"sessions": []}

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning counts the epoch into current_epoch only after this hook: the one ending here is done.
        self._record(trainer, trainer.current_epoch + 1, interrupted=self.NO_END)

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, trainer.current_epoch)

    @rank_zero_only
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """An interrupted session (Ctrl-C, a SIGTERM, a non-finite loss) counts too."""
        if not hasattr(self, "_started"):
            return
        name = type(exception).__name__
        try:
            self._record(trainer, trainer.current_epoch, interrupted="SIGTERM" if name == "SIGTERMException" else name)
        except CifarBenchError:
            pass  # the disk that stopped the run refuses this too: the error to show is the one that stopped it

    def _record(self, trainer: pl.Trainer, epochs_done: int, interrupted: str | None = None) -> None:
        """Write the earlier sessions and this one as it stands (its earlier epoch-end entry replaced)."""
        if self._run is None:
            return
        record = {**self._earlier, "commit": self._commit, "machine": machine(), "precision": str(trainer.precision)}
        # The load average tells whether other work competed for the cores during the session.
        session = {
            "started": self._started,
            "commit": self._commit,
            "wall_s": time.time() - self._started,
            "epochs_done": epochs_done,
            "load_average_1min_at_end": os.getloadavg()[0],
            # The CPU time the process got, its threads summed: near wall_s × torch_threads when the run had its
            # cores; well below, when other work or a pause (SIGSTOP) took them: then wall_s is no timing.
            "cpu_s": time.process_time() - self._cpu_started,
            "interrupted": interrupted,
            # Of wall_s, the time spent opening or building a VGG16 feature store (0.0 for other models).
            "feature_store_s": sum((c.store_s for c in trainer.callbacks if isinstance(c, FeatureStoreFeeder)), 0.0),
            # The store it read ({digest, views, build_s}; None for other models): compare shares its build once.
            "feature_store": next(
                (c.store_record for c in trainer.callbacks if isinstance(c, FeatureStoreFeeder)), None
            ),
        }
        if self._weights is not None:
            record["weights"] = self._weights
        record["sessions"] = [*self._earlier["sessions"], session]
        record["wall_s"] = sum(entry["wall_s"] for entry in record["sessions"])
        # Written whole or not at all: a kill mid-write must not leave the next session an unreadable file.
        write_json(self._run.environment_file, record)


def read_environment_first(trainer: pl.Trainer, run: RunFolder) -> None:
    """What each ``RecordEnvironment`` of ``trainer`` will add its session to (``earlier_sessions``), read before
    anything is written: the command line calls it as it takes the run folder, so that a malformed environment.json
    stops the fit there, not once its config.yaml is written."""
    for recorder in (callback for callback in trainer.callbacks if isinstance(callback, RecordEnvironment)):
        recorder._read = (str(run.path), recorder.earlier_sessions(run))
