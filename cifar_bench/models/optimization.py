"""Optimizer and learning-rate schedule from a model's hyperparameters, apart from the model that trains with them."""

from __future__ import annotations

import torch
from torch.optim import lr_scheduler


def optimizer_groups(groups: list[dict], lr: float) -> list[dict]:
    """Parameter groups with their learning rate: ``lr`` times the group's ``lr_scale`` (default 1)."""
    return [
        {**{key: value for key, value in group.items() if key != "lr_scale"}, "lr": lr * group.get("lr_scale", 1.0)}
        for group in groups
    ]


def build_optimizer(groups: list[dict], hp, device: torch.device) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum), Adam or AdamW over ``groups``, as ``hp.optimizer`` says."""
    groups = optimizer_groups(groups, hp.lr)
    # Fused kernels update every tensor in one pass; PyTorch's default on the CPU is a slow per-tensor loop.
    fused = device.type in ("cpu", "cuda") or None
    if hp.optimizer == "sgd":
        return torch.optim.SGD(
            groups,
            lr=hp.lr,
            momentum=hp.momentum,
            nesterov=hp.momentum > 0,
            weight_decay=hp.weight_decay,
            fused=fused,
        )
    adam = torch.optim.Adam if hp.optimizer == "adam" else torch.optim.AdamW
    return adam(groups, lr=hp.lr, betas=(hp.momentum, 0.999), weight_decay=hp.weight_decay, fused=fused)


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
