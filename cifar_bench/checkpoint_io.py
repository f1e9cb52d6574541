"""Checkpoints written whole or not at all, in their own folder.

Lightning's own save writes the checkpoint to a temporary file in the system's temporary folder and
moves it into place: where that folder is on another filesystem (a tmpfs ``/tmp``, a local disk under
a network share) the move is a copy straight into ``last.ckpt``, so a kill or a full disk during it
leaves a truncated ``last.ckpt`` and no previous one (measured: a 1 MiB tmpfs holding the run, ENOSPC
in the copy, ``last.ckpt`` truncated to what fitted). Here the bytes go to a hidden file beside the
checkpoint, flushed to the disk, then renamed over it (``files.atomic_file``); a refused write is one
``error:`` line and the previous checkpoint stays.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from cifar_bench.files import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO (loading, removing) with a save that is atomic on one local filesystem."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialised whole first: a pickling error writes nothing
        with atomic_file(Path(path), durable=True) as handle:
            handle.write(buffer.getbuffer())
