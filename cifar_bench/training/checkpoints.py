"""Whether a file is one of this package's checkpoints, decided here and only here, without trusting it:
tensors and plain values only, and nothing it names imported.

A checkpoint is checked once, where it enters, by ``read_checkpoint``: ``fit``/``validate``/``test
--ckpt_path`` before LightningCLI reads the file (``lightning_cli._check_checkpoint``; ``last`` once the
run folder it means is known), ``evaluate`` and ``predict`` as they load a run (``evaluation/runs.py``).
Lightning hands a checkpoint's ``hyper_parameters._class_path`` to jsonargparse, which imports that module
before anything checks it, and a checkpoint whose top level or hyperparameters are not dicts ends in an
AttributeError traceback: both are refused before Lightning sees the file. A Python caller of Lightning's
own loading (``Trainer.fit(ckpt_path=...)``, ``load_from_checkpoint``) gets Lightning's checks only.
"""

from __future__ import annotations

import inspect
import math
import zipfile
from pathlib import Path

import torch

from cifar_bench.errors import CifarBenchError
from cifar_bench.models import MODEL_CLASSES, known_model
from cifar_bench.models.optimization import stepped_state

ADVICE = "pass a .ckpt file written by cifar-bench fit"
RESUME_ADVICE = "resume from a checkpoint cifar-bench fit wrote, with the settings of the run that wrote it"


def read_checkpoint(
    path: str | Path,
    expected: type | None = None,
    default: type | None = None,
    settings: dict | None = None,
    model=None,
    resuming: bool = False,
) -> dict:
    """The checkpoint at ``path``, loaded weights_only with its tensors left on disk (mmap), once it is
    known to be one of this package's (``check_contents``) and to fit the model it will be loaded into:
    ``model``, when given (the model a config built, which Lightning loads ``--ckpt_path last`` into), else
    the model its hyperparameters describe over ``settings`` (a config's, as LightningCLI overlays them),
    of the class it records, or else ``expected`` (which a recorded class must then be), or ``default``.
    ``resuming`` (a fit continues from it): what the fit restores besides the weights is checked too
    (``check_training_state``)."""
    if not zipfile.is_zipfile(path):
        raise CifarBenchError(f"{path} is truncated or not a checkpoint: {ADVICE}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as error:  # an UnpicklingError is main's
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CifarBenchError(f"{path} is truncated or not a checkpoint ({reason}): {ADVICE}")
    recorded = check_contents(checkpoint, str(path), type(model) if model is not None else expected)
    if model is not None:
        differing = differing_weights(model.state_dict(), checkpoint.get("state_dict", {}))
        if differing:
            raise CifarBenchError(
                f"{path} does not fit this {type(model).__name__} (it differs at {', '.join(differing[:3])}): "
                "use the model settings of the run that wrote it"
            )
    else:
        cls = recorded or expected or default
        model = check_hyperparameters(checkpoint, str(path), cls, settings or {}) if cls is not None else None
    if resuming and model is not None:
        check_training_state(checkpoint, str(path), model)
    return checkpoint


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
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CifarBenchError(
            f"{source} holds settings {cls.__name__} does not take ({reason}): "
            "pass a checkpoint of the run the config describes"
        )


def check_hyperparameters(checkpoint: dict, source: str, cls: type, settings: dict):
    """The model the hyperparameters describe (over ``settings``), returned, must have the weights' names and
    shapes, seen on the ``meta`` device, where no parameter is allocated or initialised: a 14 MB checkpoint
    saying ``hidden=[20000,20000]`` would otherwise build a 461M-parameter MLP (1.8 GB) before its weights
    were compared. LightningCLI rebuilds the model from these hyperparameters too. A list among them longer
    than the state dict has weights (``hidden`` of a million layers) is refused before even that: on
    ``meta`` too, each entry would still be built as a module."""
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
    return described


def check_contents(checkpoint: object, source: str, expected: type | None = None) -> type | None:
    """The model class ``checkpoint`` records (None if none), if it is one of this package's checkpoints,
    else one CifarBenchError naming ``source``.

    Its top level, ``hyper_parameters`` and ``state_dict`` must be dicts, the model class it records (if
    any) one of this package's models (and ``expected``, when given), its weights named by strings, and
    every floating-point weight finite: NaN or infinite weights predict one class everywhere, and resume
    into a NaN loss.
    """
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
    odd_key = next((key for key in checkpoint.get("state_dict", {}) if not isinstance(key, str)), None)
    if odd_key is not None:
        raise CifarBenchError(f"{source} names a weight {odd_key!r}, not by a string: {ADVICE}")
    broken = first_non_finite(checkpoint.get("state_dict", {}))
    if broken is not None:
        raise CifarBenchError(
            f"{source} holds non-finite weights (NaN or infinity in {broken}): use an earlier checkpoint of the run"
        )
    return recorded


def check_training_state(checkpoint: dict, source: str, model) -> None:
    """What a resumed fit restores besides the weights, each part checked before Lightning sees it (a malformed
    one was a traceback, or a failure at the first step): ``optimizer_states`` the state of exactly the one
    optimizer ``model``'s settings build, group by group and weight by weight in the form it has after a step
    (``optimization.stepped_state``), every value finite; ``global_step`` a whole number from 0; and
    ``lr_schedulers`` a list of at most one dict, whose content is never loaded: the fit continues its own
    schedule at the step reached (``optimization.continue_schedule``)."""
    step, schedules, states = (checkpoint.get(key) for key in ("global_step", "lr_schedulers", "optimizer_states"))
    if type(step) is not int or step < 0:
        raise CifarBenchError(f"{source} records no step reached (global_step {step!r}): {RESUME_ADVICE}")
    if not isinstance(schedules, list) or len(schedules) > 1 or not all(isinstance(s, dict) for s in schedules):
        held = (
            f"a list of {len(schedules)} ({', '.join(type(s).__name__ for s in schedules[:3])})"
            if isinstance(schedules, list)
            else "nothing"
            if schedules is None
            else f"a {type(schedules).__name__}"
        )
        raise CifarBenchError(
            f"{source} holds {held} as its learning-rate schedules, not a list of at most one schedule's state: "
            f"{RESUME_ADVICE}"
        )
    if not isinstance(states, list) or len(states) != 1:
        held = (
            f"{len(states)} optimizer states"
            if isinstance(states, list)
            else "no optimizer state (a checkpoint of the weights only)"
            if states is None
            else f"a {type(states).__name__} as its optimizer states"
        )
        raise CifarBenchError(f"{source} holds {held}, not the one of a cifar-bench model: {RESUME_ADVICE}")
    fault = optimizer_fault(states[0], stepped_state(model.parameter_groups(), model.hparams))
    if fault is not None:
        raise CifarBenchError(
            f"{source}: its optimizer state does not fit this {type(model).__name__}'s {model.hparams.optimizer} "
            f"optimizer ({fault}): {RESUME_ADVICE}"
        )


def optimizer_fault(saved: object, expected: dict) -> str | None:
    """What in ``saved`` is not a state of the optimizer whose state after a step is ``expected``, if anything:
    its parameter groups (their number, the weights each lists, each setting of the kind expected, finite),
    and each weight's state (the buffers expected, tensors of the weight's shape, finite)."""
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"} or not isinstance(saved["state"], dict):
        return "not an optimizer's state dict"
    groups, ours = saved["param_groups"], expected["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(ours):
        return f"{len(groups) if isinstance(groups, list) else 'no list of'} parameter groups, not {len(ours)}"
    for index, (group, our) in enumerate(zip(groups, ours)):
        if not isinstance(group, dict) or not set(our) <= set(group):
            return f"parameter group {index} lacks settings"
        listed = group["params"]
        if not isinstance(listed, list) or not all(type(i) is int for i in listed) or listed != our["params"]:
            return f"parameter group {index} lists other weights"
        odd = next(
            (key for key, value in group.items() if key != "params" and not same_kind(value, our.get(key, 0.0))), None
        )
        if odd is not None:
            return f"parameter group {index}'s {odd} is not a setting of this optimizer"
    for key, state in saved["state"].items():
        our = expected["state"].get(key) if type(key) is int else None
        if our is None or not isinstance(state, dict) or set(state) != set(our):
            return f"the state of weight {key!r} is not one this optimizer keeps"
        for name, value in state.items():
            if isinstance(our[name], torch.Tensor):
                if (
                    not plain_tensor(value)
                    or value.shape != our[name].shape
                    or value.is_floating_point() != our[name].is_floating_point()
                ):
                    return f"weight {key}'s {name} is not a tensor of shape {tuple(our[name].shape)}"
                if value.is_floating_point() and not torch.isfinite(value).all():
                    return f"weight {key}'s {name} holds NaN or infinity"
            elif not same_kind(value, our[name]):
                return f"weight {key}'s {name} is not a value of this optimizer"
    return None


def same_kind(value: object, ours: object) -> bool:
    """Whether ``value`` is a setting of the kind ``ours`` is: a finite number, a flag (or None), or a tuple of
    as many finite numbers."""
    if isinstance(ours, bool) or ours is None:
        return isinstance(value, bool) or value is None
    if isinstance(ours, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(ours, (tuple, list)):
        return isinstance(value, (tuple, list)) and len(value) == len(ours) and all(map(same_kind, value, ours))
    return False


def plain_tensor(value: object) -> bool:
    """Whether ``value`` is a dense tensor with its data (not on ``meta``), of real numbers."""
    return (isinstance(value, torch.Tensor) and value.layout == torch.strided and value.device.type == "cpu"
            and not value.is_complex() and not value.is_quantized)  # fmt: skip


def differing_weights(ours: dict, theirs: dict) -> list[str]:
    """The names, sorted, of weights that one state dict lacks or holds in another shape (or not as a tensor)."""
    return sorted(
        name
        for name in set(ours) | set(theirs)
        if name not in ours or not isinstance(theirs.get(name), torch.Tensor) or ours[name].shape != theirs[name].shape
    )


def first_non_finite(state_dict: dict) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity, if any."""
    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            return name
    return None
