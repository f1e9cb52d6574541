"""Unpack a tar archive (any compression) safely: plain members only, bounded in size, atomically.

Members go into a hidden temporary folder beside the target, the caller checks what came out while
it is still there, and only then is it renamed into place: neither an interrupted unpack nor an
archive with damaged content leaves a folder that later runs would take for complete. Links, special
files and paths outside the target are refused, and so is an archive that would unpack to more bytes
or members than the limits below, before it fills the disk.
"""

from __future__ import annotations

import lzma
import os
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Callable, Iterator

from cifar_bench.errors import CifarBenchError

MAX_UNPACKED_BYTES = 1 << 30  # CIFAR-10 unpacks to about 180 MB
MAX_MEMBERS = 1000  # an official archive holds one folder and eight files

# What a damaged archive raises while it is read: tarfile's own errors and the decompressors'.
# MemoryError: a member header declaring a long name or pax record of petabytes, read whole by tarfile.
_ARCHIVE_READ_ERRORS = (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError, ValueError, MemoryError)


def one_line(error: BaseException) -> str:
    """An exception as one line (tarfile lists every method it tried on separate lines)."""
    return " ".join(str(error).split()) or type(error).__name__


def _plain_members_only(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
    """tarfile's 'data' filter, and beyond it: only files and folders at relative paths.

    The data filter would strip a leading '/' and extract inside the target; an official archive
    never holds one, so it is refused like a link instead.
    """
    if not (member.isfile() or member.isdir()):
        raise tarfile.FilterError(f"member {member.name!r} is a link or special file")
    if member.name.startswith(("/", os.sep)):
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, dest_path)


def _refused(archive: Path, why: str) -> CifarBenchError:
    return CifarBenchError(f"refusing to unpack {archive}: {why}; fetch the official archive again")


def _bounded_members(tar: tarfile.TarFile, archive: Path, scratch: Path) -> Iterator[tarfile.TarInfo]:
    """The archive's members, stopping a bomb by the sizes the headers declare before anything is
    written, and by the bytes that extraction really wrote before the next member."""
    limit_mib = MAX_UNPACKED_BYTES // (1 << 20)
    declared = written = 0
    for count, member in enumerate(tar, start=1):
        declared += member.size
        if count > MAX_MEMBERS:
            raise _refused(archive, f"it holds more than {MAX_MEMBERS} members")
        if declared > MAX_UNPACKED_BYTES:
            raise _refused(archive, f"it would unpack to more than {limit_mib} MiB")
        yield member
        if member.isfile():
            written += (scratch / member.name).lstat().st_size
        if written > MAX_UNPACKED_BYTES:
            raise _refused(archive, f"it wrote more than {limit_mib} MiB")


def _scratch_folder(archive: Path, data_dir: Path) -> tempfile.TemporaryDirectory:
    """A hidden folder beside the final one (same filesystem, so the final rename is atomic)."""
    try:
        return tempfile.TemporaryDirectory(prefix=".cifar-unpack-", dir=data_dir)
    except OSError as error:
        raise CifarBenchError(
            f"cannot unpack {archive.name} into {data_dir} ({one_line(error)}): put the archive, or a symlink to it, "
            "in a writable folder and pass that as data_dir"
        )


def unpack_atomically(archive: Path, data_dir: Path, settle: Callable[[Path], Path]) -> Path:
    """Unpack ``archive`` and move one folder of it into ``data_dir``; return where it landed.

    ``settle(scratch)`` sees the unpacked content in the temporary folder, raises
    :class:`CifarBenchError` if it is not what was expected, and returns the folder to move.
    """
    try:
        tar = tarfile.open(archive, "r:*")
    except _ARCHIVE_READ_ERRORS as error:
        raise CifarBenchError(
            f"{archive} is not a readable tar archive ({one_line(error)}): delete it and fetch the official archive again"
        )
    with tar, _scratch_folder(archive, data_dir) as scratch:
        try:
            tar.extractall(scratch, members=_bounded_members(tar, archive, Path(scratch)), filter=_plain_members_only)
        except tarfile.FilterError as error:
            raise _refused(archive, one_line(error))
        except OSError as error:
            if error.errno is None:  # gzip and bz2 report damaged data as OSError without an errno
                raise CifarBenchError(
                    f"{archive} is truncated or corrupt ({one_line(error)}): delete it and fetch it again"
                )
            raise CifarBenchError(
                f"cannot unpack {archive} into {data_dir} ({one_line(error)}): free space or fix permissions"
            )
        except _ARCHIVE_READ_ERRORS as error:
            raise CifarBenchError(
                f"{archive} is truncated or corrupt ({one_line(error)}): delete it and fetch it again"
            )
        folder = settle(Path(scratch))
        target = data_dir / folder.name
        try:
            os.rename(folder, target)
        except OSError as error:
            raise CifarBenchError(
                f"cannot move the unpacked {target.name}/ into place ({one_line(error)}): remove what is at {target}"
            )
    return target
