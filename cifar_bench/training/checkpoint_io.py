"""Checkpoints written whole or not at all (a hidden file beside them, flushed, renamed over: Lightning's
move from the system's temporary folder truncated ``last.ckpt`` across filesystems), removals limited to
files in the checkpoint's own folder, and the checkpoint the command line checked handed to Lightning
(``hand_over``) so a file swapped after the check is never loaded. See docs/guarantees.md.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from cifar_bench.errors import CifarBenchError
from cifar_bench.io import atomic_file

# The fields of a ModelCheckpoint's state that name files (best_k_models: its keys).
CHECKPOINT_PATH_FIELDS = ("best_model_path", "kth_best_model_path", "last_model_path")
# The checkpoints checked and handed over for Lightning to load, by absolute path: for one LightningCLI run.
_HANDED_OVER: dict[str, dict[str, Any]] = {}


def hand_over(path, checkpoint: Optional[dict[str, Any]]) -> None:
    """``checkpoint``, checked, is what Lightning loads from ``path`` (and reads hyperparameters from); None: none."""
    if checkpoint is not None:
        _HANDED_OVER[os.path.abspath(os.fspath(path))] = checkpoint


def handed_over(path) -> Optional[dict[str, Any]]:
    """The checkpoint handed over for ``path``, if any (left for the load)."""
    return _HANDED_OVER.get(os.path.abspath(os.fspath(path))) if path is not None else None


@contextmanager
def handing_over():
    """Checkpoints handed over within are forgotten at its end (those Lightning never loaded too)."""
    try:
        yield
    finally:
        _HANDED_OVER.clear()


def refuse_other_loader(strategy, path) -> None:
    """A checkpoint handed over for ``path`` is loaded by ``AtomicCheckpointIO`` only: another would read the file."""
    if handed_over(path) is not None and not isinstance(strategy.checkpoint_io, AtomicCheckpointIO):
        raise CifarBenchError(
            f"--ckpt_path {path} is loaded by {AtomicCheckpointIO.__module__}.AtomicCheckpointIO only: "
            "keep it in --trainer.plugins (configs/base.yaml sets it)"
        )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO (loading, removing) with a save that is atomic on one local filesystem."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialised whole first: a pickling error writes nothing
        with atomic_file(Path(path), durable=True) as handle:
            handle.write(buffer.getbuffer())

    def load_checkpoint(self, path, *args, **kwargs) -> dict[str, Any]:
        """The checkpoint handed over for ``path`` (taken: Lightning drops it once restored), else the file read."""
        checkpoint = _HANDED_OVER.pop(os.path.abspath(os.fspath(path)), None) if "://" not in str(path) else None
        if checkpoint is None:
            checkpoint = super().load_checkpoint(path, *args, **kwargs)
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get("callbacks"), dict) and "://" not in str(path):
            folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
            checkpoint["callbacks"] = {
                key: state
                for key, state in checkpoint["callbacks"].items()
                if not str(key).startswith("ModelCheckpoint") or restorable(state, folder)
            }
        return checkpoint

    def remove_checkpoint(self, path) -> None:
        """Unlink the file (or a link) at ``path``; a folder there is left alone."""
        if "://" in str(path):
            return super().remove_checkpoint(path)
        try:
            os.unlink(path)
        except (FileNotFoundError, IsADirectoryError, PermissionError):  # PermissionError: a folder, on macOS
            pass


def _score(value: object) -> bool:
    """A ModelCheckpoint score as Lightning keeps one: a one-number float tensor (or None: none yet)."""
    return value is None or (isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point())


def restorable(state: object, folder: str) -> bool:
    """Whether a ModelCheckpoint's ``state`` holds what Lightning reads, of the kinds it reads (else a KeyError or
    TypeError, after the run's config.yaml was written or a whole epoch later), and names its folder as
    ``folder`` and files directly in it only."""
    if not isinstance(state, dict) or not isinstance(state.get("best_k_models", {}), dict):
        return False
    scores = [
        state.get("best_model_score", "missing"),
        state.get("kth_value"),
        *state.get("best_k_models", {}).values(),
    ]
    if not isinstance(state.get("best_model_path"), str) or not all(map(_score, scores)):
        return False
    paths = [state.get(field) or "" for field in CHECKPOINT_PATH_FIELDS] + list(state.get("best_k_models", {}))
    named = [str(state.get("dirpath")), *(path for path in paths if isinstance(path, str))]
    if any("\0" in path for path in named):  # no file has such a name; os.path.realpath raises ValueError on it
        return False
    return os.path.realpath(str(state.get("dirpath"))) == folder and all(
        path == "" or (isinstance(path, str) and os.path.basename(path) not in ("", ".", "..")
                       and os.path.realpath(os.path.dirname(os.path.abspath(path))) == folder)
        for path in paths
    )  # fmt: skip
