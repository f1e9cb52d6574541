"""Reading a checkpoint without trusting it: tensors and plain values only, and nothing it names imported.

Lightning hands a checkpoint's ``hyper_parameters._class_path`` to jsonargparse, which imports that
module before anything checks it; a checkpoint whose top level or hyperparameters are not dicts ends
in an AttributeError traceback. Both are refused here, before Lightning sees the file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cifar_bench.errors import CifarBenchError

MODELS_MODULE = "cifar_bench.models"


def model_class_paths() -> list[str]:
    """The class paths a checkpoint of this package records: its models, as the configs name them."""
    import cifar_bench.models as models

    return [
        f"{MODELS_MODULE}.{name}"
        for name in models.__all__
        if isinstance(cls := getattr(models, name), type)
        and issubclass(cls, models.CifarClassifier)
        and cls is not models.CifarClassifier
    ]


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint at ``path``, loaded weights_only with its tensors left on disk (mmap).

    Refuses a file whose top level, ``hyper_parameters`` or ``state_dict`` is not a dict, and one
    whose model class path is not one of this package's models (compared by name: nothing is imported).
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    advice = "pass a .ckpt file written by cifar-bench fit"
    if not isinstance(checkpoint, dict):
        raise CifarBenchError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint: {advice}")
    for key in ("hyper_parameters", "state_dict"):
        if not isinstance(checkpoint.get(key, {}), dict):
            raise CifarBenchError(f"{path} holds a {type(checkpoint[key]).__name__} as {key}, not a dict: {advice}")
    class_path = checkpoint.get("hyper_parameters", {}).get("_class_path")
    known = model_class_paths()
    if class_path is not None and class_path not in known:
        raise CifarBenchError(
            f"{path} is a checkpoint of {class_path!r}, not of one of this package's models ({', '.join(known)}): {advice}"
        )
    return checkpoint


def first_non_finite(state_dict: dict) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity, if any."""
    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            return name
    return None
