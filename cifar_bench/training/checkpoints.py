"""Whether a file is one of this package's checkpoints, decided here and only here, without trusting it
(docs/guarantees.md): Lightning and jsonargparse would import the class a checkpoint names before checking it.
"""

from __future__ import annotations

import inspect
import zipfile
from io import BytesIO
from pathlib import Path

import torch

from cifar_bench.errors import CifarBenchError, first_line
from cifar_bench.io import TORCH_LOAD_ERRORS, read_small_bytes
from cifar_bench.models import MODEL_CLASSES, known_model
from cifar_bench.training.resume_state import plain_tensor

ADVICE = "pass a .ckpt file written by cifar-bench fit"
# The largest checkpoint read: VGG16 trained whole in float32 with Adam's two buffers is 1.7 GB.
MAX_CHECKPOINT_BYTES = 4 * 2**30


def read_checkpoint(
    path: str | Path,
    expected: type | None = None,
    default: type | None = None,
    settings: dict | None = None,
    model=None,
) -> dict:
    """The checkpoint at ``path``, read once into memory and loaded weights_only from those bytes (what is
    checked is what is loaded), once it is this package's (``check_contents``) and fits ``model``, else the
    model its hyperparameters describe over ``settings``, of its recorded class, ``expected`` or ``default``."""
    try:
        content = BytesIO(read_small_bytes(Path(path), MAX_CHECKPOINT_BYTES))
    except OSError as error:
        raise CifarBenchError(f"{path} is truncated or not a checkpoint ({error.strerror or error}): {ADVICE}")
    if not zipfile.is_zipfile(content):
        raise CifarBenchError(f"{path} is truncated or not a checkpoint: {ADVICE}")
    content.seek(0)
    try:
        checkpoint = torch.load(content, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as error:  # an UnpicklingError is main's
        reason = first_line(error)
        raise CifarBenchError(f"{path} is truncated or not a checkpoint ({reason}): {ADVICE}")
    recorded = check_contents(checkpoint, str(path), type(model) if model is not None else expected)
    if model is not None:
        differing = differing_weights(model.state_dict(), checkpoint.get("state_dict", {}))
        if differing:
            raise CifarBenchError(
                f"{path} does not fit this {type(model).__name__} (it differs at {', '.join(differing[:3])}): "
                "use the model settings of the run that wrote it"
            )
    elif (cls := recorded or expected or default) is not None:
        check_hyperparameters(checkpoint, str(path), cls, settings or {})
    return checkpoint


def as_model_config(checkpoint: dict | None) -> dict:
    """A checkpoint's hyperparameters as LightningCLI lays them over a config's ``model`` (empty: none)."""
    hparams = {k: v for k, v in (checkpoint or {}).get("hyper_parameters", {}).items() if k != "_instantiator"}
    if "_class_path" in hparams:
        return {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
    return hparams


def model_settings(cls: type, hyper_parameters: dict) -> dict:
    """The saved hyperparameters ``cls`` takes: the named parameters of its constructor and of the base
    classes its ``**kwargs`` reach; others (jsonargparse's ``_class_path``, an option a later version
    dropped, such as VGG16's ``cache_features``) are left out. Pretrained weights are not fetched
    (``weights`` none): the state dict carries every weight."""
    parameters: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        own = inspect.signature(klass.__init__).parameters
        parameters.update({name: p for name, p in own.items() if p.kind is p.POSITIONAL_OR_KEYWORD and name != "self"})
        if not any(p.kind is p.VAR_KEYWORD for p in own.values()):
            break
    settings = {key: value for key, value in hyper_parameters.items() if key in parameters}
    return settings | ({"weights": "none"} if "weights" in parameters else {})


def build_model(cls: type, settings: dict, source: str):
    """``cls`` built with the saved ``settings`` it takes; settings it refuses are one error naming ``source``."""
    try:
        return cls(**model_settings(cls, settings))
    except (CifarBenchError, RuntimeError, KeyError, TypeError, ValueError) as error:
        reason = first_line(error)
        raise CifarBenchError(
            f"{source} holds settings {cls.__name__} does not take ({reason}): "
            "pass a checkpoint of the run the config describes"
        )


def check_hyperparameters(checkpoint: dict, source: str, cls: type, settings: dict):
    """The model the hyperparameters describe (over ``settings``) must have the weights' names and shapes,
    seen on ``meta`` (nothing allocated: ``hidden=[20000,20000]`` would build 1.8 GB first); a list setting
    longer than the weights (a million layers would still be built as modules) is refused before that."""
    weights, hyper_parameters = checkpoint.get("state_dict", {}), checkpoint.get("hyper_parameters", {})
    for key, value in hyper_parameters.items():
        if isinstance(value, (list, tuple)) and len(value) > len(weights):
            raise CifarBenchError(
                f"{source}: its hyperparameter {key} lists {len(value):,} entries for {len(weights)} weights: {ADVICE}"
            )
    with torch.device("meta"):
        described = build_model(cls, settings | hyper_parameters, source)
    differing = differing_weights(described.state_dict(), weights)
    if differing:
        raise CifarBenchError(
            f"{source}: the {cls.__name__} its hyperparameters describe does not fit its weights (they differ at "
            f"{', '.join(differing[:3])}): {ADVICE}"
        )


def check_contents(checkpoint: object, source: str, expected: type | None = None) -> type | None:
    """The model class ``checkpoint`` records (None if none), if it is one of this package's checkpoints
    (dicts, a known model class, ``expected`` when given, weights named by strings, tensors with their data,
    floating-point ones finite: NaN weights predict one class everywhere), else one CifarBenchError."""
    if not isinstance(checkpoint, dict):
        raise CifarBenchError(f"{source} holds a {type(checkpoint).__name__}, not a checkpoint: {ADVICE}")
    for key in ("hyper_parameters", "state_dict"):
        if not isinstance(checkpoint.get(key, {}), dict):
            raise CifarBenchError(f"{source} holds a {type(checkpoint[key]).__name__} as {key}, not a dict: {ADVICE}")
    class_path = checkpoint.get("hyper_parameters", {}).get("_class_path")
    recorded = known_model(class_path)
    if class_path is not None and recorded is None:
        known = ", ".join(MODEL_CLASSES)
        raise CifarBenchError(
            f"{source} is a checkpoint of {class_path!r}, not of one of this package's models ({known}): {ADVICE}"
        )
    if expected is not None and recorded is not None and recorded is not expected:
        raise CifarBenchError(
            f"{source} is not a checkpoint of {expected.__name__} but of {recorded.__name__}: "
            "use the config of the run that wrote it"
        )
    for name, value in checkpoint.get("state_dict", {}).items():
        if not isinstance(name, str):
            raise CifarBenchError(f"{source} names a weight {name!r}, not by a string: {ADVICE}")
        if isinstance(value, torch.Tensor) and not plain_tensor(value):
            raise CifarBenchError(
                f"{source} holds {name} as a tensor without its data or of no weight's kind (a {value.dtype} tensor "
                f"of layout {value.layout} on {value.device}): {ADVICE}"
            )
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise CifarBenchError(
                f"{source} holds non-finite weights (NaN or infinity in {name}): use an earlier checkpoint of the run"
            )
    return recorded


def differing_weights(ours: dict, theirs: dict) -> list[str]:
    """The names, sorted, of weights that one state dict lacks or holds in another shape (or not as a tensor)."""
    return sorted(
        name
        for name in set(ours) | set(theirs)
        if name not in ours or not isinstance(theirs.get(name), torch.Tensor) or ours[name].shape != theirs[name].shape
    )
