"""A trained run as evaluate reads it, trusting none of its files: the run folder, its config.yaml,
its checkpoint (weights_only, only this package's models, finite weights) and the data it names
(only looked at: a run's config never makes evaluate download, unpack or create anything)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cifar_bench.data import CIFAR10DataModule, CifarArrays, load_cifar10
from cifar_bench.errors import CifarBenchError
from cifar_bench.io import user_path
from cifar_bench.models import MODEL_CLASSES, CifarClassifier, known_model
from cifar_bench.run_folder import RunFolder, read_config
from cifar_bench.training.checkpoints import build_model, read_checkpoint


@dataclass(frozen=True)
class Run:
    """A training run as LightningCLI leaves it (``RunFolder``), the checkpoint chosen and its config read."""

    folder: RunFolder
    checkpoint: Path
    config: dict


def find_run(ckpt: str | Path) -> Run:
    """The run of a checkpoint file, or of a run folder (whose last checkpoint is then used)."""
    path = user_path(ckpt)
    if path.is_dir():
        folder = RunFolder(path)
        checkpoint = folder.last_checkpoint
        if not checkpoint.is_file():
            raise CifarBenchError(
                f"run folder {path} has no {checkpoint.relative_to(path)}: pass --ckpt a .ckpt file of a finished run"
            )
    elif path.is_file():
        folder, checkpoint = RunFolder.of_checkpoint(path), path
    else:
        raise CifarBenchError(f"no checkpoint at {path}: pass --ckpt a .ckpt file or a run folder (version_N/)")
    if not folder.config_file.is_file():
        raise CifarBenchError(
            f"no {folder.config_file.name} in {folder.path}: evaluate needs the run folder LightningCLI wrote "
            "(version_N/ holding config.yaml and checkpoints/)"
        )
    config = read_config(folder.config_file, "restore the run's config")
    return Run(RunFolder(folder.path.resolve()), checkpoint.resolve(), config)


def model_class(run: Run) -> type[CifarClassifier]:
    """The model class the run's config names, among this package's models (no code is loaded)."""
    class_path = (run.config.get("model") or {}).get("class_path")
    cls = known_model(class_path)
    if cls is None:
        known = ", ".join(MODEL_CLASSES)
        raise CifarBenchError(
            f"{run.folder.config_file} names an unknown model {class_path!r}: expected one of {known}"
        )
    return cls


def load_model(run: Run) -> tuple[CifarClassifier, dict]:
    """The trained model on the CPU, and the checkpoint's bookkeeping (epoch, global step).

    The model is built from the checkpoint's hyperparameters and given its weights here, not by Lightning's
    ``load_from_checkpoint``: the file is read once, and checked once, by ``read_checkpoint``.
    """
    cls = model_class(run)
    checkpoint = read_checkpoint(run.checkpoint, expected=cls)  # of this class, its hyperparameters fit its weights
    model = build_model(cls, checkpoint.get("hyper_parameters", {}), str(run.checkpoint))
    model.load_state_dict(checkpoint.get("state_dict", {}))
    return model.eval(), {"epoch": checkpoint.get("epoch"), "global_step": checkpoint.get("global_step")}


def read_data(run: Run, data_dir: str | None, download: bool) -> tuple[str, CifarArrays]:
    """CIFAR-10 from ``data_dir``, or else from where the run was trained, which is only looked at:
    a run folder's config.yaml never makes evaluate download, unpack or create anything."""
    if data_dir is not None:
        return data_dir, load_cifar10(data_dir, download)
    data = run.config.get("data")
    trained_on = data.get("data_dir", CIFAR10DataModule().hparams["data_dir"]) if isinstance(data, dict) else None
    try:
        if not isinstance(trained_on, str):
            raise CifarBenchError(f"{run.folder.config_file} names no data_dir")
        return trained_on, load_cifar10(trained_on, download=download, unpack=download)
    except CifarBenchError as error:
        raise CifarBenchError(
            f"no readable CIFAR-10 where the run was trained ({error}); evaluate only looks there: "
            "pass --data_dir FOLDER (with --download true to fetch it)"
        )


def trained_images(run: Run, train_labels: torch.Tensor) -> torch.Tensor:
    """The positions of the training images the run trained on (its validation images held out), as its
    config's data split makes them; a split the config does not record is all of them (older runs)."""
    data = run.config.get("data")
    data = data if isinstance(data, dict) else {}
    split = {key: data[key] for key in ("val_size", "train_size", "seed") if key in data}
    try:
        train_index, _ = CIFAR10DataModule(**split).split_positions(train_labels)
    except CifarBenchError as error:
        raise CifarBenchError(f"{run.folder.config_file} holds a data split evaluate cannot redo: {error}")
    return train_index
