"""Checkpoints written whole or not at all, in their own folder.

Lightning's own save writes the checkpoint to a temporary file in the system's temporary folder and
moves it into place with ``shutil.move`` (fsspec's local transaction): where that folder is on another
filesystem than the run (a local ``/tmp`` under a network share, a tmpfs) the move falls back to a
copy that truncates ``last.ckpt`` and writes it again, so a kill or a full disk during the copy leaves
a truncated ``last.ckpt`` and no previous one; a full disk ended the fit in a traceback. Here the
bytes go to a hidden file beside the checkpoint, flushed to the disk, then renamed over it
(``files.atomic_file``); a refused write is one ``error:`` line and the previous checkpoint stays.
The price: the disk must hold the old and the new checkpoint at once for a moment.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from cifar_bench.io import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO (loading, removing) with a save that is atomic on one local filesystem."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialised whole first: a pickling error writes nothing
        with atomic_file(Path(path), durable=True) as handle:
            handle.write(buffer.getbuffer())
