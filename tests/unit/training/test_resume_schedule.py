"""A fit resumed with another --trainer.max_epochs: its learning-rate schedule is the one this fit plans, at the
step reached (a saved schedule planned for another horizon was loaded as it was, or failed to load with
``KeyError: '_schedulers'``); with the horizon unchanged, it is the saved one, bit for bit."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import cli_args, copy_run

from cifar_bench.cli import main
from cifar_bench.models import MLPClassifier
from cifar_bench.models.optimization import build_optimizer, build_schedule, continue_schedule

STEPS_PER_EPOCH = 23  # trained_mlp: 180 training images in batches of 8


def resumed_schedule(checkpoint: dict, epochs: int) -> str | None:
    """``continue_schedule`` on ``checkpoint`` as a fit of trained_mlp's model over ``epochs`` epochs calls it."""
    model = MLPClassifier(**{key: value for key, value in checkpoint["hyper_parameters"].items() if key[0] != "_"})
    optimizer = build_optimizer(model.parameter_groups(), model.hparams, torch.device("cpu"))
    unscheduled = [dict(group) for group in optimizer.param_groups]
    steps = epochs * STEPS_PER_EPOCH
    scheduler = build_schedule(optimizer, model.hparams, steps, epochs)
    return continue_schedule(checkpoint, optimizer, scheduler, unscheduled, steps)


@pytest.fixture
def last_checkpoint(trained_mlp) -> dict:
    return torch.load(trained_mlp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_with_the_horizon_unchanged_the_saved_schedule_is_continued_bit_for_bit(last_checkpoint):
    saved = copy.deepcopy(last_checkpoint)
    assert last_checkpoint["global_step"] == 2 * STEPS_PER_EPOCH
    assert resumed_schedule(last_checkpoint, epochs=2) is None
    assert last_checkpoint["lr_schedulers"] == saved["lr_schedulers"]
    assert last_checkpoint["optimizer_states"][0]["param_groups"] == saved["optimizer_states"][0]["param_groups"]


def test_with_more_epochs_the_schedule_is_this_fits_at_the_step_reached(last_checkpoint):
    """The cosine of a 2-epoch run has reached zero; saved as it was, it rose again past its end over a 3-epoch
    fit (its period is the old horizon). This fit's cosine over 3 epochs is at 2/3 of its way there."""
    changed = resumed_schedule(last_checkpoint, epochs=3)
    assert changed is not None and f"over {3 * STEPS_PER_EPOCH} steps, at step {2 * STEPS_PER_EPOCH}" in changed
    (schedule,) = last_checkpoint["lr_schedulers"]
    assert schedule["T_max"] == 3 * STEPS_PER_EPOCH and schedule["last_epoch"] == 2 * STEPS_PER_EPOCH
    lr = last_checkpoint["hyper_parameters"]["lr"]
    (group,) = last_checkpoint["optimizer_states"][0]["param_groups"]
    assert group["lr"] == pytest.approx(lr * (1 + math.cos(math.pi * 2 / 3)) / 2)
    assert group["initial_lr"] == lr


def test_a_step_beyond_this_fits_plan_advances_the_schedule_no_further_than_its_end(last_checkpoint):
    last_checkpoint["global_step"] = 10**12  # a file does not decide how long the schedule is advanced
    assert resumed_schedule(last_checkpoint, epochs=1) is not None
    assert last_checkpoint["lr_schedulers"][0]["last_epoch"] == STEPS_PER_EPOCH


def fit(data, logs, epochs: int, *words: str) -> None:
    main(cli_args("fit", "cnn", data, logs, "--trainer.max_epochs", str(epochs), "--trainer.limit_train_batches",
                  "1", "--trainer.check_val_every_n_epoch", "1", "--trainer.precision", "32-true",
                  "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", *words))  # fmt: skip


@pytest.mark.slow
def test_a_warm_up_run_resumed_with_more_epochs_continues_on_the_schedule_of_an_uninterrupted_run(
    imbalanced_data, tmp_path
):
    """One step an epoch: over one epoch the warm-up rounds to no step (a cosine alone), over three it is a
    step (a warm-up, then the cosine): the saved cosine's state met a SequentialLR, ``KeyError: '_schedulers'``."""
    fit(imbalanced_data, tmp_path / "short", 1)
    with pytest.warns(UserWarning, match="holds another learning-rate schedule than this fit plans"):
        fit(imbalanced_data, tmp_path / "short", 3, "--ckpt_path", "last")
    fit(imbalanced_data, tmp_path / "whole", 3)
    resumed, whole = (
        torch.load(logs / "cnn" / "version_0" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        for logs in (tmp_path / "short", tmp_path / "whole")
    )
    assert resumed["global_step"] == whole["global_step"] == 3
    assert resumed["lr_schedulers"] == whole["lr_schedulers"] and "_schedulers" in whole["lr_schedulers"][0]
    groups = (checkpoint["optimizer_states"][0]["param_groups"] for checkpoint in (resumed, whole))
    assert [group["lr"] for group in next(groups)] == [group["lr"] for group in next(groups)]


def test_a_resume_with_the_same_max_epochs_says_nothing_of_the_schedule(
    trained_mlp, imbalanced_data, tmp_path, recwarn
):
    copy_run(trained_mlp, tmp_path / "logs")
    main(cli_args("fit", "mlp", imbalanced_data, tmp_path / "logs", "--ckpt_path", "last", "--trainer.max_epochs", "2",
                  "--trainer.precision", "32-true", "--trainer.enable_progress_bar", "false",
                  "--model.warmup_epochs", "0"))  # fmt: skip  # the run's own settings, as trained_mlp's
    assert not [w for w in recwarn if "learning-rate schedule" in str(w.message)]
