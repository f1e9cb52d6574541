"""Optuna's storage and the study in it, shared by every worker of a sweep.

``--storage`` is an SQLAlchemy URL (``sqlite:///sweep.db``, ``postgresql+psycopg://user@host/db``): Optuna's RDB
storage, with its heartbeat, so a trial whose worker died anywhere is failed once its heartbeat is
stale; or a file path: Optuna's journal file, for a shared filesystem without a database server. Both
also fail at once a trial left running by a dead worker of this machine (``fail_abandoned``).

Where the storage is a file, the workers of one machine take turns, through a lock beside it, to count the
trials and start the next: together they start exactly ``--trials``.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, ProgrammingError

from cifar_bench.errors import CifarBenchError, first_line
from cifar_bench.io import take_lock

# How long a worker waits for another to count the trials and start one (a moment's work).
TURN_WAIT_S = 300

DEFAULT_STORAGE = "sweep.db"
HEARTBEAT_S, GRACE_S = 60, 180
# Trial user attributes: the worker running it ([host, pid]), and why it failed, when it failed on its own.
WORKER, FAILURE = "worker", "failure"
SPACE, MODEL = "space", "model"
# PostgreSQL's errors for a table or a type that another worker created first (duplicate_table, duplicate_object).
CREATED_BY_ANOTHER = ("42P07", "42710")
STORAGE_HELP = (
    "pass an SQLAlchemy URL (sqlite:///sweep.db, postgresql+psycopg://user:password@host/db) or a journal file path"
)


class Storage:
    """An opened storage, what to call it in files (no password), and the lock file its workers share, if any."""

    def __init__(self, value: str | None, out: Path) -> None:
        value = value or f"sqlite:///{(out / DEFAULT_STORAGE).absolute()}"
        self.shown, self.lock_file, self.file = value, None, None
        try:
            url = make_url(value) if "://" in value else None
            if url is not None:
                self.shown = url.render_as_string(hide_password=True)
                file = url.database if url.get_backend_name() == "sqlite" else None
                file = Path(file) if file not in (None, "", ":memory:") else None
            else:
                file = Path(value)
            if file is not None and not file.absolute().parent.is_dir():
                raise FileNotFoundError(f"no folder {file.absolute().parent}")  # filelock would create it
            self.file = file.absolute() if file is not None else None
            self.lock_file = file.with_name(f".{file.name}.sweep-lock") if file is not None else None
            with self.turn(), warnings.catch_warnings():  # two workers creating one SQLite file's tables would collide
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat's
                self.backend = JournalStorage(JournalFileBackend(value)) if url is None else self._database(value, file)
        except Exception as error:  # a bad URL, a missing driver, a server not answering, a folder not there
            reason = " ".join(first_line(error).split())
            raise CifarBenchError(
                f"cannot open the storage {self.shown} ({type(error).__name__}: {reason}): {STORAGE_HELP}"
            )

    @staticmethod
    def _database(value: str, file: Path | None) -> RDBStorage:
        """Optuna's RDB storage. Workers starting together on a fresh server database race to create its tables
        (the turn lock is only for files): the loser's error, a unique key taken or, on PostgreSQL, a table or
        type already there, is retried twice, 1 s and then 2 s later, by when the winner is done. Any other
        error (a permission refused, say) is raised at once."""
        for attempt in range(3):
            try:
                return RDBStorage(
                    value,
                    engine_kwargs={"connect_args": {"timeout": 60}} if file is not None else {},
                    heartbeat_interval=HEARTBEAT_S,
                    grace_period=GRACE_S,
                )
            except (IntegrityError, ProgrammingError) as error:
                state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
                if attempt == 2 or (isinstance(error, ProgrammingError) and state not in CREATED_BY_ANOTHER):
                    raise
                time.sleep(1 + attempt)

    def described(self, folder: Path) -> str:
        """How files name the storage: a file inside ``folder`` by its place there (evidence copied elsewhere
        names no machine's path), anything else as ``shown``."""
        inside = self.file is not None and self.file.is_relative_to(folder.absolute())
        return f"{self.file.relative_to(folder.absolute())} in the sweep's folder" if inside else self.shown

    @contextmanager
    def turn(self):
        """Held while a worker counts the trials and starts one (a no-op for a server database): a moment's
        work, so one held for TURN_WAIT_S (a stopped worker) is one error, never an endless wait."""
        if self.lock_file is None:
            yield
            return
        busy = f"{self.lock_file} stayed held for {TURN_WAIT_S} s (a worker stopped while starting a trial?): end it"
        lock = take_lock(self.lock_file, TURN_WAIT_S, busy)
        try:
            yield
        finally:
            lock.release()


def open_study(storage: Storage, name: str, model: str, space: dict, seed: int, pruner) -> optuna.Study:
    """The study ``name``, created or resumed; one that searches another model or space is refused.

    The sampler is TPE seeded with ``seed`` plus the trials already there: a sweep run alone is reproducible,
    and workers that start one after another draw differently."""
    with storage.turn():
        study = optuna.create_study(storage=storage.backend, study_name=name, direction="maximize", load_if_exists=True)
        recorded = study.user_attrs
        if SPACE not in recorded:
            study.set_user_attr(SPACE, space)
            study.set_user_attr(MODEL, model)
        elif recorded[SPACE] != space or recorded.get(MODEL) != model or study.direction.name != "MAXIMIZE":
            raise CifarBenchError(
                f"study {name!r} in {storage.shown} searches another model or space ({recorded.get(MODEL)}, "
                f"{', '.join(recorded[SPACE])}): pass another --study_name, or that study's --model and --space"
            )
        started = len(study.get_trials(deepcopy=False))
    sampler = optuna.samplers.TPESampler(seed=seed + started, constant_liar=True)
    return optuna.load_study(study_name=name, storage=storage.backend, sampler=sampler, pruner=pruner)


def counted(study: optuna.Study) -> list[FrozenTrial]:
    """The trials that use up the budget: finished (complete, pruned, failed in training) or running. A trial
    whose worker died is not counted: another takes its place."""
    return [
        trial
        for trial in study.get_trials(deepcopy=False)
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        or (trial.state == TrialState.FAIL and FAILURE in trial.user_attrs)
    ]


def fail_abandoned(study: optuna.Study) -> list[int]:
    """Fail the running trials whose worker, on this machine, is dead (killed, crashed); their numbers."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        host, pid = trial.user_attrs.get(WORKER) or (None, None)
        if host == socket.gethostname() and not alive(pid):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            failed.append(trial.number)
    return failed


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True
