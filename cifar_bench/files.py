"""Reading files a run folder holds without trusting them: regular files only, of a bounded size."""

from __future__ import annotations

import os
import stat
from pathlib import Path

# The largest metrics.json or config.yaml read: far above a real one (curves of hundreds of epochs: ~1 MB).
MAX_SMALL_FILE = 16 * 2**20


def read_small_bytes(path: Path, limit: int = MAX_SMALL_FILE) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes. Anything else raises OSError: a FIFO would
    hang the read, a device such as /dev/zero never end it (a link to either is followed and refused), and
    a larger file is refused."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(f"{path} is not a regular file")
        content = handle.read(limit + 1)
    if len(content) > limit:
        raise OSError(f"{path} is over {limit:,} bytes")
    return content


def read_small_text(path: Path, limit: int = MAX_SMALL_FILE) -> str:
    """``read_small_bytes`` as UTF-8 text (undecodable bytes raise UnicodeDecodeError, a ValueError)."""
    return read_small_bytes(path, limit).decode("utf-8")
