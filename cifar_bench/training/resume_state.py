"""What a resumed fit restores besides the weights, checked before anything is written (Lightning restores the
loops and callbacks only after the run's ``config.yaml`` is written, and loads whatever it finds), each part
against the form built here from the real thing (an optimizer stepped on ``meta``, a Trainer's fit loop).
"""

from __future__ import annotations

import functools
import math

import torch
from pytorch_lightning.loops import _FitLoop

from cifar_bench.data.loader import InMemoryBatches
from cifar_bench.errors import CifarBenchError
from cifar_bench.models.optimization import stepped_state
from cifar_bench.training.callbacks import RestoreRandomState

RESUME_ADVICE = "resume from a checkpoint cifar-bench fit wrote, with the settings of the run that wrote it"
# A loop's counters, as Lightning counts them: whole numbers from 0 that a tensor (int64) holds.
MAX_COUNT = 2**63 - 1
# The progress trackers' counters, each event counted only after the one before it.
EVENTS = ("ready", "started", "processed", "completed")
# The optimizer steps the fit loop counts, which Lightning reads back as the trainer's global_step.
STEPS = ("epoch_loop.automatic_optimization.optim_progress", "optimizer", "step", "total", "completed")


def check_training_state(checkpoint: dict, source: str, model, max_epochs: int | None = None) -> None:
    """What a resumed fit restores besides the weights, each part checked before Lightning sees it (a malformed
    one was a traceback, or a failure at the first step): the optimizer's state, ``global_step``, the schedules'
    list (never loaded), the fit loop's progress (no epoch past ``max_epochs``) and the random-number states."""
    step = checked_optimization(checkpoint, source, model)
    check_fit_loop(checkpoint, source, step, max_epochs)
    check_random_state(checkpoint, source)


def checked_optimization(checkpoint: dict, source: str, model) -> int:
    """The step ``checkpoint`` reached, once its step, schedules and optimizer state are checked."""
    step, schedules, states = (checkpoint.get(key) for key in ("global_step", "lr_schedulers", "optimizer_states"))
    if type(step) is not int or step < 0:
        raise CifarBenchError(f"{source} records no step reached (global_step {step!r}): {RESUME_ADVICE}")
    if not isinstance(schedules, list) or len(schedules) > 1 or not all(isinstance(s, dict) for s in schedules):
        raise CifarBenchError(
            f"{source} holds {held(schedules, 'a list of {n} ({names})', 'nothing')} as its learning-rate schedules, "
            f"not a list of at most one schedule's state: {RESUME_ADVICE}"
        )
    if not isinstance(states, list) or len(states) != 1:
        nothing = "no optimizer state (a checkpoint of the weights only)"
        raise CifarBenchError(
            f"{source} holds {held(states, '{n} optimizer states', nothing, ' as its optimizer states')}, not the one "
            f"of a cifar-bench model: {RESUME_ADVICE}"
        )
    fault = optimizer_fault(states[0], stepped_state(model.parameter_groups(), model.hparams))
    if fault is not None:
        raise CifarBenchError(
            f"{source}: its optimizer state does not fit this {type(model).__name__}'s {model.hparams.optimizer} "
            f"optimizer ({fault}): {RESUME_ADVICE}"
        )
    return step


def held(value: object, listed: str, nothing: str, other: str = "") -> str:
    """What a checkpoint holds where a list belongs, in words: ``listed`` (its ``{n}`` items, the first three's
    type ``{names}``) for a list, ``nothing`` for None, else the type and ``other``."""
    if isinstance(value, list):
        return listed.format(n=len(value), names=", ".join(type(item).__name__ for item in value[:3]))
    return nothing if value is None else f"a {type(value).__name__}{other}"


def check_fit_loop(checkpoint: dict, source: str, step: int, max_epochs: int | None) -> None:
    """The fit loop's progress in the form a Trainer saves it, at ``step`` optimizer steps, no epoch past ``max_epochs``."""
    loops = checkpoint.get("loops")
    fault = loop_fault(loops["fit_loop"], step) if isinstance(loops, dict) and "fit_loop" in loops else "none saved"
    if fault is not None:
        raise CifarBenchError(
            f"{source}: its fit loop's progress is not one Lightning saves ({fault}): {RESUME_ADVICE}"
        )
    epoch = loops["fit_loop"]["epoch_progress"]["current"]["completed"]
    if max_epochs not in (None, -1) and epoch > max_epochs:
        raise CifarBenchError(
            f"{source} reached epoch {epoch}, past --trainer.max_epochs {max_epochs}: pass --trainer.max_epochs "
            f"{epoch} or more to continue it"
        )


def check_random_state(checkpoint: dict, source: str) -> None:
    """The random-number states ``RestoreRandomState`` restores, set into new generators to check them."""
    callbacks = checkpoint.get("callbacks", {})
    if not isinstance(callbacks, dict):
        raise CifarBenchError(f"{source} holds a {type(callbacks).__name__} as its callbacks' states: {RESUME_ADVICE}")
    if RestoreRandomState.__qualname__ in callbacks:
        try:
            RestoreRandomState.restore(callbacks[RestoreRandomState.__qualname__], into_new_generators=True)
        except RestoreRandomState.FAULTS as error:
            raise CifarBenchError(
                f"{source}: its random-number state is not one cifar-bench saved ({type(error).__name__}): "
                f"{RESUME_ADVICE}"
            ) from None


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


def finite(number: int | float) -> bool:
    """Whether a number is finite as the float it is used as (an int past a float's range is not)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def same_kind(value: object, ours: object) -> bool:
    """Whether ``value`` is a setting of the kind ``ours`` is: a finite number, a flag (or None), or a tuple of
    as many finite numbers."""
    if isinstance(ours, bool) or ours is None:
        return isinstance(value, bool) or value is None
    if isinstance(ours, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and finite(value)
    if isinstance(ours, (tuple, list)):
        return isinstance(value, (tuple, list)) and len(value) == len(ours) and all(map(same_kind, value, ours))
    return False


def plain_tensor(value: object) -> bool:
    """Whether ``value`` is a dense tensor with its data (not on ``meta``), of real numbers."""
    return (isinstance(value, torch.Tensor) and value.layout == torch.strided and value.device.type == "cpu"
            and not value.is_complex() and not value.is_quantized)  # fmt: skip


@functools.cache
def saved_fit_loop() -> dict:
    """The fit loop's state as Lightning saves it: that of the loop a Trainer builds (``_FitLoop``, built here
    alone: a Trainer would also read the cluster's environment), with the state of this package's training
    batches (``InMemoryBatches``) that a fit adds once it has iterated them."""
    batches = InMemoryBatches(torch.zeros(0, 3, 32, 32, dtype=torch.uint8), torch.zeros(0), 1, shuffle=False)
    return _FitLoop(trainer=None).state_dict() | {"state_dict": {"combined_loader": [batches.state_dict()]}}


def loop_fault(saved: object, step: int) -> str | None:
    """What in ``saved`` is not a fit loop's state counting ``step`` optimizer steps, if anything: its form
    (``form_fault``), its trackers' order (``count_fault``), and its optimizer steps."""
    ours = saved_fit_loop()
    fault = form_fault(saved, ours, "fit_loop", optional={"combined_loader"}) or count_fault(saved, "fit_loop")
    if fault is not None:
        return fault
    counted = functools.reduce(lambda state, key: state[key], STEPS, saved)
    return None if counted == step else f"it counts {counted} optimizer steps, its global_step {step}"


def form_fault(saved: object, ours: object, where: str, optional: set = frozenset()) -> str | None:
    """Where ``saved`` differs in form from ``ours``, if anywhere: dicts of the same keys (but ``optional``
    ones), lists of as many entries, values of the same type (a flag never a number), counts from 0 to
    ``MAX_COUNT``."""
    if isinstance(ours, dict):
        if not isinstance(saved, dict):
            return f"{where} is a {type(saved).__name__}, not a dict"
        odd = sorted(map(repr, (set(ours) - set(saved) - optional) | (set(saved) - set(ours))))
        if odd:
            return f"{where} lacks or adds {', '.join(odd[:3])}"
        return next(filter(None, (form_fault(v, ours[k], f"{where}.{k}", optional) for k, v in saved.items())), None)
    if isinstance(ours, list):
        if not isinstance(saved, list) or len(saved) != len(ours):
            return f"{where} is not a list of {len(ours)}"
        return next(
            filter(None, (form_fault(*pair, f"{where}[{i}]", optional) for i, pair in enumerate(zip(saved, ours)))),
            None,
        )
    if type(saved) is not type(ours):
        return f"{where} is a {type(saved).__name__}, not a {type(ours).__name__}"
    if type(ours) is int and not 0 <= saved <= MAX_COUNT:
        return f"{where} is {saved}, not a count from 0 to {MAX_COUNT}"
    return None


def count_fault(saved: dict, where: str) -> str | None:
    """Where a progress tracker in ``saved`` (of the form checked) counts an event more often than the one before
    it (``EVENTS``), if anywhere. Its current counts may exceed its total: Lightning zeroes the validation loop's
    total as each epoch starts and its current as the next validation starts, and saves them so in between."""
    counts = [saved[event] for event in EVENTS if event in saved]
    if counts != sorted(counts, reverse=True):
        return f"{where} counts {', '.join(f'{event} {saved[event]}' for event in EVENTS if event in saved)}"
    nested = ((value, f"{where}.{key}") for key, value in saved.items() if isinstance(value, dict))
    return next(filter(None, (count_fault(*pair) for pair in nested)), None)
