"""Optimizer and learning-rate schedule from a model's hyperparameters, apart from the model that trains with them."""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.optim import lr_scheduler


def build_optimizer(groups: list[dict], hp, device: torch.device) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum), Adam or AdamW over ``groups``, as ``hp.optimizer`` says; a group's learning rate
    is ``hp.lr`` times its ``lr_scale`` (default 1)."""
    groups = [
        {**{key: value for key, value in group.items() if key != "lr_scale"}, "lr": hp.lr * group.get("lr_scale", 1.0)}
        for group in groups
    ]
    # Fused kernels update every tensor in one pass; PyTorch's default on the CPU is a slow per-tensor loop.
    common = {"lr": hp.lr, "weight_decay": hp.weight_decay, "fused": device.type in ("cpu", "cuda") or None}
    if hp.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=hp.momentum, nesterov=hp.momentum > 0, **common)
    adam = torch.optim.Adam if hp.optimizer == "adam" else torch.optim.AdamW
    return adam(groups, betas=(hp.momentum, 0.999), **common)


def build_schedule(optimizer: torch.optim.Optimizer, hp, total_steps: int, max_epochs: int):
    """The per-step learning-rate schedule of ``hp.lr_schedule`` over ``total_steps`` (None: a constant rate).

    Warm-up ramps linearly over ``hp.warmup_epochs`` (fractions allowed) before cosine or constant; with
    'onecycle' it sets the length of the rising phase (30% of training without it).
    """
    steps = max(1, total_steps)
    warmup = min(steps - 1, round(hp.warmup_epochs * steps / max(1, max_epochs)))
    if hp.lr_schedule == "onecycle":
        max_lr = [group["lr"] for group in optimizer.param_groups]
        rising = warmup / steps if warmup > 0 else 0.3
        return lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=steps, pct_start=rising)
    main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps - warmup) if hp.lr_schedule == "cosine" else None
    if warmup <= 0:
        return main
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup)
    return ramp if main is None else lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def stepped_state(groups: list[dict], hp) -> dict:
    """The ``state_dict`` of the optimizer ``hp`` describes over ``groups`` after one step, taken on stand-ins
    of their parameters on the ``meta`` device (nothing allocated or computed): the form every state a fit
    saves of that optimizer has, each weight's buffers included."""
    stand_ins = [
        {**group, "params": [nn.Parameter(torch.empty_like(p, device="meta")) for p in group["params"]]}
        for group in groups
    ]
    optimizer = build_optimizer(stand_ins, hp, torch.device("meta"))
    for group in stand_ins:
        for parameter in group["params"]:
            parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    return optimizer.state_dict()


def continue_schedule(checkpoint: dict, optimizer: torch.optim.Optimizer, scheduler, unscheduled: list[dict],
                      total_steps: int) -> str | None:  # fmt: skip
    """Make ``checkpoint``, which a resumed fit restores its optimizer and schedule from next, hold the
    schedule this fit plans (``scheduler``, just built on ``optimizer``; None for a constant rate) at the
    step the checkpoint reached, in place of the schedule it holds, with the learning rate (and whatever
    else the schedule sets in a parameter group) that schedule gives there. ``unscheduled``: the parameter
    groups as they were before the schedule was built.

    A saved schedule is never loaded as such: it was planned for the horizon of the fit that saved it, and
    one planned for another (``--trainer.max_epochs`` changed, or the batches per epoch) or of another kind
    (a warm-up that rounded to no step) cannot be stretched: Lightning loaded it anyway, so the rate followed
    the old horizon (a cosine rising again past its end), or its load failed (``KeyError: '_schedulers'``).
    Where the horizon is unchanged, the schedule advanced here is the saved one, bit for bit (the same steps
    from the same start). Returns what changed when the checkpoint held another schedule, else None.
    A checkpoint without the form cifar-bench saves (only a Python caller of Lightning's own loading hands
    one over unchecked: ``training.checkpoints`` checks it on entry) is left to Lightning."""
    states, step = checkpoint.get("optimizer_states"), checkpoint.get("global_step")
    if not (isinstance(states, list) and len(states) == 1 and isinstance(states[0], dict)
            and isinstance(states[0].get("param_groups"), list) and type(step) is int and step >= 0):  # fmt: skip
        return None
    step = min(step, max(0, total_steps))  # bounded by this fit's plan, not by the file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": no training here
        for _ in range(step if scheduler is not None else 0):
            scheduler.step()
    ours = [copy.deepcopy(scheduler.state_dict())] if scheduler is not None else []
    owned = [
        {
            key: value
            for key, value in group.items()
            if key == "lr" or (key != "params" and (key not in before or value != before[key]))
        }  # fmt: skip
        for group, before in zip(optimizer.param_groups, unscheduled)
    ]
    saved_groups = states[0]["param_groups"]
    same = (
        same_values(checkpoint.get("lr_schedulers"), ours)
        and len(saved_groups) == len(owned)
        and all(
            isinstance(saved, dict) and same_values({key: saved.get(key) for key in values}, values)
            for saved, values in zip(saved_groups, owned)
        )
    )
    checkpoint["lr_schedulers"] = ours
    for saved, values in zip(saved_groups, owned):
        if isinstance(saved, dict):
            saved.update(values)
    if same:
        return None
    rates = ", ".join(f"{group['lr']:.4g}" for group in owned)
    return f"continued as this fit's schedule over {total_steps} steps, at step {step}: learning rate {rates}"


def same_values(saved: object, ours: object) -> bool:
    """Whether ``saved`` (read from a file) holds exactly the plain values ``ours`` holds, walked along ours."""
    if isinstance(ours, dict):
        return (
            isinstance(saved, dict)
            and saved.keys() == ours.keys()
            and all(same_values(saved[key], value) for key, value in ours.items())
        )
    if isinstance(ours, (list, tuple)):
        return isinstance(saved, (list, tuple)) and len(saved) == len(ours) and all(map(same_values, saved, ours))
    return type(saved) is type(ours) and saved == ours
