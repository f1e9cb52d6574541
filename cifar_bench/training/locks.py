"""Never two writers on one run: a fit locks its run folder, a study its save_dir, and a second one stops at
once with one line. ``filelock`` locks are released however the holder ends; the logger's ``version_N`` is
chosen and created under a lock too, by fit, validate and test (two fits starting together picked the same one).
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock

from cifar_bench.errors import CifarBenchError
from cifar_bench.io import take_lock

LOCK_NAME = ".cifar-bench.lock"
VERSIONS_LOCK_NAME = ".versions.lock"
# How long a fit waits for another to choose its version (a moment's work) before giving up.
VERSIONS_WAIT_S = 60


def hold_lock(folder: Path, what: str) -> FileLock:
    """The lock of ``folder``, held until this process ends (or ``release()``); a CifarBenchError if another
    process holds it. ``what`` names this command in the message ("fit", "study")."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CifarBenchError(f"cannot create {folder} ({error}): choose another folder") from None
    return take_lock(
        folder / LOCK_NAME,
        0,
        f"another cifar-bench {what} is writing into {folder} (it holds {folder / LOCK_NAME}); "
        f"wait for it to end, or stop it, before starting this {what} there",
    )


def claim_version(logger) -> None:
    """Fix the TensorBoard logger's version and create its folder, with no other process choosing one in
    the same logger folder meanwhile (a version chosen already, by a flag or a resume, is kept)."""
    parent = Path(logger.root_dir)
    parent.mkdir(parents=True, exist_ok=True)
    lock = parent / VERSIONS_LOCK_NAME
    held = take_lock(lock, VERSIONS_WAIT_S, f"{lock} stayed held by another process for {VERSIONS_WAIT_S} s: end it")
    try:
        os.makedirs(logger.log_dir, exist_ok=True)
    except OSError as error:  # e.g. a file or a dangling link where the version's folder goes
        raise CifarBenchError(
            f"cannot create the run folder {logger.log_dir} ({error.strerror or error}): remove or rename what is "
            "there, or name another version with --trainer.logger.init_args.version"
        ) from None
    finally:
        held.release()
