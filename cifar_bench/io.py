"""Reading files a run folder holds without trusting them (regular files only, of a bounded size), and
writing them so that no reader ever sees half of one, nor a link planted in a run folder is written through."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from filelock import FileLock, Timeout

from cifar_bench.errors import CifarBenchError

# What ``torch.load(..., weights_only=True)`` raises on a damaged or crafted file besides its UnpicklingError:
# a malformed pickle stream gets through as KeyError (a memo index never stored) or IndexError (an empty stack).
TORCH_LOAD_ERRORS = (RuntimeError, EOFError, ValueError, KeyError, IndexError, TypeError, zipfile.BadZipFile)

# The largest metrics.json, environment.json or config.yaml read: far above a real one (curves of hundreds of epochs: ~1 MB).
MAX_SMALL_FILE = 16 * 2**20


def user_path(text: str | Path) -> Path:
    """A path given on the command line (or by a config), ``~`` and ``~user`` expanded as a shell would; one
    error where no such home exists (pathlib raises RuntimeError). Never for names found in folders: those
    are taken as written."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise CifarBenchError(f"{text}: cannot expand its '~' (no such user or home folder): write the path in full")


def read_small_bytes(path: Path, limit: int = MAX_SMALL_FILE) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, read from one open file. Anything else raises
    OSError: a FIFO would hang the read, a device such as /dev/zero never end it (a link to either is followed
    and refused), and a larger file is refused. The size the file says is read first: a large ``limit`` (a
    checkpoint's) allocates no more than the file holds unless it grows (or, like /proc's, says 0)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(f"{path} is not a regular file")
        if status.st_size > limit:
            raise OSError(f"{path} is over {limit:,} bytes")
        content = handle.read(status.st_size + 1)
        if len(content) > status.st_size:
            content += handle.read(limit + 1 - len(content))
    if len(content) > limit:
        raise OSError(f"{path} is over {limit:,} bytes")
    return content


def read_small_text(path: Path, limit: int = MAX_SMALL_FILE) -> str:
    """``read_small_bytes`` as UTF-8 text (undecodable bytes raise UnicodeDecodeError, a ValueError)."""
    return read_small_bytes(path, limit).decode("utf-8")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks (a weights file is hundreds of MB): what names its content."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _json_integer(text: str) -> int:
    """A JSON integer, refused past 300 digits: no file this package writes holds one, and past ~309 every
    check of it as a number (``math.isfinite``, a float) raises OverflowError instead of answering."""
    if len(text) > 300:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def read_json_object(path: Path, advice: str) -> dict:
    """A JSON object read with ``read_small_text``; anything else (missing, not a regular file, too large, not
    JSON, nested too deep to parse, not an object) is one error naming the file, ending in ``advice``."""
    try:
        content = json.loads(read_small_text(path), parse_int=_json_integer)
    except (OSError, ValueError, RecursionError) as error:  # RecursionError: nesting too deep to parse
        reason = f"{type(error).__name__}: {error}" if isinstance(error, OSError) else type(error).__name__
        raise CifarBenchError(f"{path} is not readable JSON ({reason}): {advice}")
    if not isinstance(content, dict):
        raise CifarBenchError(f"{path} holds no JSON object: {advice}")
    return content


def take_lock(path: Path, wait_s: float, busy: str, report=None) -> FileLock:
    """The ``filelock`` lock at ``path`` (``flock``: freed when its holder ends in any way), waited for at most
    ``wait_s`` seconds, saying what for through ``report`` when it must wait: a lock held longer (by a
    stopped process) is the one error ``busy``, never an endless wait; a lock file that cannot be taken (a
    link or a folder planted as it, a read-only folder) is one error naming it."""
    lock = FileLock(str(path))
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if wait_s <= 0:
                raise
            if report is not None:
                report(f"Waiting for {path}, held by another process, for at most {wait_s:,.0f} s")
            lock.acquire(timeout=wait_s)
    except Timeout:
        raise CifarBenchError(busy) from None
    except OSError as error:
        raise CifarBenchError(f"cannot lock {path} ({error}): remove it, or choose another folder") from None
    return lock


def user_secret(name: str) -> bytes:
    """32 random bytes kept in this user's cache folder (``$XDG_CACHE_HOME/cifar-bench/NAME``, else under
    ``~/.cache``; created on first use, readable by this user only): what this user's runs know and a folder
    handed over does not, to tag what they write in shared places (the feature stores)."""
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cifar-bench"
    path = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.path.lexists(path):
            descriptor, fresh = tempfile.mkstemp(dir=folder)  # mode 0600
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(os.urandom(32))
            try:
                os.link(fresh, path)  # whole, and only if no other process made one first
            except FileExistsError:
                pass
            finally:
                os.unlink(fresh)
        secret = read_small_bytes(path, 32)
    except OSError as error:
        raise CifarBenchError(f"cannot keep the secret {path} ({error}): make {folder} writable and run again")
    if len(secret) != 32:
        raise CifarBenchError(f"{path} is not a secret of 32 bytes: remove it and run again")
    return secret


# The root each write below a checked folder walks down from, {folder: root} (absolute, neither resolved), as
# the check that found no link between them named it (``output.refuse_links``); any other write walks from its
# own file's folder.
_ROOTS: dict[str, str] = {}
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def write_below(root: Path, folders) -> None:
    """Every later write into ``folders`` (or below them) walks down from ``root`` and refuses a link on the way."""
    for folder in folders:
        _ROOTS[os.path.abspath(folder)] = os.path.abspath(root)


def _root_of(folder: str) -> str:
    current = folder
    while current not in _ROOTS:
        if os.path.dirname(current) == current:
            return folder
        current = os.path.dirname(current)
    return _ROOTS[current]


def open_folder(folder: Path, root: Path | None = None) -> int:
    """A descriptor of ``folder``, created where missing, reached from ``root`` (by default the root
    ``write_below`` gave it, else the folder itself) one component at a time, each opened with ``O_NOFOLLOW``
    relative to the one above it: a link in any component below the root is refused even if it was swapped
    in after a check by path. The root itself (and above it) is the trusted path the command was given."""
    folder = os.path.abspath(folder)
    root = os.path.abspath(root) if root is not None else _root_of(folder)
    parts = Path(os.path.relpath(folder, root)).parts if folder != root else ()
    if parts[:1] == ("..",):
        root, parts = folder, ()
    os.makedirs(root, exist_ok=True)
    descriptor, reached = os.open(root, _FOLDER), Path(root)
    try:
        for part in parts:
            reached = reached / part
            with suppress(FileExistsError):
                os.mkdir(part, dir_fd=descriptor)
            try:
                inner = os.open(part, _FOLDER | os.O_NOFOLLOW, dir_fd=descriptor)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR) and stat.S_ISLNK(
                    os.lstat(part, dir_fd=descriptor).st_mode
                ):
                    raise link_refused(reached) from None
                raise
            os.close(descriptor)
            descriptor = inner
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def link_refused(link: Path) -> CifarBenchError:
    return CifarBenchError(f"{link} is a link: refusing to write through it; remove it and run again")


@contextmanager
def atomic_file(path: Path, durable: bool = False) -> Iterator[IO[bytes]]:
    """Yield a binary file to write: a new one under a random name in ``path``'s folder (reached through no
    link, never following one), which replaces ``path`` only if the block succeeds (``durable``: flushed to
    the disk first, for checkpoints) and is removed if not; a refused write is one CifarBenchError."""
    path = Path(path)
    try:
        folder = open_folder(path.parent)
    except OSError as error:
        raise unwritable(path, error) from error
    partial, created = f".{path.name}.{secrets.token_hex(4)}.partial", False
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(partial, flags, 0o666, dir_fd=folder)  # the umask applies, as to any new file
        created = True
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(partial, path.name, src_dir_fd=folder, dst_dir_fd=folder)
    except OSError as error:
        raise unwritable(path, error) from error
    finally:
        if created:
            with suppress(FileNotFoundError):  # renamed into place
                os.unlink(partial, dir_fd=folder)
        os.close(folder)


def unwritable(path: Path, error: OSError) -> CifarBenchError:
    reason = os.strerror(error.errno) if error.errno else str(error)
    advice = "free some space" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "make the folder writable"
    return CifarBenchError(
        f"cannot write {path}: {reason}; any previous {path.name} there is left as it was. "
        f"{advice[0].upper()}{advice[1:]} and run the command again"
    )
