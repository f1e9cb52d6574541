"""Issue 33's malformed training state in a checkpoint a fit resumes from, each attack performed: an optimizer
or learning-rate schedule state, a loops' progress or a random-number state that is not the one cifar-bench
saves was a traceback (or a failure at the first step, silently half-loaded or trained from a made-up
position; a random state was refused only once config.yaml was rewritten); it is one error line before
anything is written."""

from __future__ import annotations

import pytest
import torch
from conftest import cli_args, copy_run, snapshot

from cifar_bench.cli import main


def optimizer(checkpoint: dict) -> dict:
    return checkpoint["optimizer_states"][0]


def first_buffer(checkpoint: dict) -> dict:
    return optimizer(checkpoint)["state"][0]


def fit_loop(checkpoint: dict) -> dict:
    return checkpoint["loops"]["fit_loop"]


def every_counter(progress: dict, value: int) -> None:
    for tracker in progress.values():
        tracker.update(dict.fromkeys(tracker, value))


def random_state(checkpoint: dict) -> dict:
    return checkpoint["callbacks"]["RestoreRandomState"]


ATTACKS = {
    "optimizer_states missing": lambda c: c.pop("optimizer_states"),
    "optimizer_states not a list": lambda c: c.update(optimizer_states={"0": optimizer(c)}),
    "no optimizer state": lambda c: c.update(optimizer_states=[]),
    "two optimizer states": lambda c: c.update(optimizer_states=[optimizer(c), optimizer(c)]),
    "a state dict with other keys": lambda c: c.update(optimizer_states=[{"state": {}, "groups": []}]),
    "a second parameter group": lambda c: optimizer(c)["param_groups"].append(dict(optimizer(c)["param_groups"][0])),
    "a group listing other weights": lambda c: optimizer(c)["param_groups"][0].update(params=[0, 1, 2]),
    "a group's setting of another kind": lambda c: optimizer(c)["param_groups"][0].update(momentum="fast"),
    "a group's setting not finite": lambda c: optimizer(c)["param_groups"][0].update(weight_decay=float("nan")),
    "a group's setting past a float": lambda c: optimizer(c)["param_groups"][0].update(lr=10**400),
    "a buffer of another shape": lambda c: first_buffer(c).update(momentum_buffer=torch.zeros(3)),
    "a buffer of another name": lambda c: first_buffer(c).update(exp_avg=first_buffer(c).pop("momentum_buffer")),
    "a buffer that is not a tensor": lambda c: first_buffer(c).update(momentum_buffer=[0.0]),
    "a buffer on meta": lambda c: first_buffer(c).update(momentum_buffer=first_buffer(c)["momentum_buffer"].to("meta")),
    "a buffer holding NaN": lambda c: first_buffer(c)["momentum_buffer"].fill_(float("nan")),
    "state of a weight the model lacks": lambda c: optimizer(c)["state"].update({99: dict(first_buffer(c))}),
    "lr_schedulers missing": lambda c: c.pop("lr_schedulers"),
    "lr_schedulers not a list": lambda c: c.update(lr_schedulers={"T_max": 3}),
    "a schedule that is not a dict": lambda c: c.update(lr_schedulers=[[1, 2]]),
    "two schedules": lambda c: c.update(lr_schedulers=c["lr_schedulers"] * 2),
    "no step reached": lambda c: c.update(global_step="46"),
    "loops not a dict": lambda c: c.update(loops="x"),
    "fit_loop not a dict": lambda c: c["loops"].update(fit_loop="x"),
    "fit_loop missing": lambda c: c["loops"].pop("fit_loop"),
    "a progress missing": lambda c: fit_loop(c).pop("epoch_progress"),
    "a counter that is a string": lambda c: fit_loop(c)["epoch_loop.batch_progress"]["current"].update(ready="23"),
    "a flag that is a number": lambda c: fit_loop(c)["epoch_loop.batch_progress"].update(is_last_batch=1),
    "a negative counter": lambda c: fit_loop(c)["epoch_progress"]["current"].update(completed=-5),
    "epochs past int64": lambda c: every_counter(fit_loop(c)["epoch_progress"], 10**30),
    "more batches completed than started": lambda c: fit_loop(c)["epoch_loop.batch_progress"]["current"].update(
        completed=24
    ),
    "steps counted other than global_step": lambda c: every_counter(
        fit_loop(c)["epoch_loop.automatic_optimization.optim_progress"]["optimizer"]["step"], 10**6
    ),
    "a loader state of another form": lambda c: fit_loop(c)["state_dict"]["combined_loader"][0].update(epoch="x"),
    "two loader states": lambda c: fit_loop(c)["state_dict"]["combined_loader"].append({"epoch": 0}),
    "callbacks not a dict": lambda c: c.update(callbacks=[]),
    "a python random state that is not one": lambda c: random_state(c).update(python="not a state"),
    "a torch random state of another size": lambda c: random_state(c).update(torch=torch.zeros(3, dtype=torch.uint8)),
    "a numpy random state on meta": lambda c: random_state(c).update(
        numpy=(random_state(c)["numpy"][0], random_state(c)["numpy"][1].to("meta"), *random_state(c)["numpy"][2:])
    ),
}


def attacked(run, attack: str):
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    ATTACKS[attack](checkpoint)
    torch.save(checkpoint, last)
    return last


def one_error_line(capsys, exit_info) -> str:
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


def resume_refused(data, logs, tmp_path, capsys) -> str:
    """``fit --ckpt_path last`` on the runs in ``logs``: its one error line, with nothing under ``tmp_path`` changed."""
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(cli_args("fit", "mlp", data, logs, "--ckpt_path", "last", "--trainer.max_epochs", "3",
                      "--trainer.enable_progress_bar", "false"))  # fmt: skip
    line = one_error_line(capsys, exit_info)
    assert snapshot(tmp_path) == before
    return line


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_malformed_training_state_is_one_error_line_before_anything_is_written(
    trained_mlp, imbalanced_data, tmp_path, capsys, attack
):
    logs = tmp_path / "logs"
    last = attacked(copy_run(trained_mlp, logs), attack)
    line = resume_refused(imbalanced_data, logs, tmp_path, capsys)
    assert str(last) in line and "resume from a checkpoint cifar-bench fit wrote" in line


@pytest.mark.parametrize(
    "attack",
    [
        "a buffer of another shape",
        "lr_schedulers missing",
        "fit_loop not a dict",
        "a python random state that is not one",
    ],
)
def test_a_checkpoint_named_by_path_is_checked_alike(trained_mlp, imbalanced_data, tmp_path, capsys, attack):
    last = attacked(copy_run(trained_mlp, tmp_path / "handed_over"), attack)
    with pytest.raises(SystemExit) as exit_info:
        main(cli_args("fit", "mlp", imbalanced_data, tmp_path / "logs", "--ckpt_path", str(last),
                      "--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false"))  # fmt: skip
    assert str(last) in one_error_line(capsys, exit_info)
    assert not (tmp_path / "logs").exists()


def test_an_optimizer_the_settings_do_not_build_is_one_error_line(trained_mlp, imbalanced_data, tmp_path, capsys):
    """``--ckpt_path last`` loads into the model the config builds: an SGD state handed to Adam failed at the
    first step (``KeyError: 'betas'``)."""
    run = copy_run(trained_mlp, tmp_path / "logs")
    with pytest.raises(SystemExit) as exit_info:
        main(cli_args("fit", "mlp", imbalanced_data, tmp_path / "logs", "--ckpt_path", "last", "--model.optimizer",
                      "adam", "--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false"))  # fmt: skip
    line = one_error_line(capsys, exit_info)
    assert f"{run / 'checkpoints' / 'last.ckpt'}: its optimizer state does not fit this MLPClassifier's adam" in line


def test_a_checkpoint_past_max_epochs_is_one_error_line_before_anything_is_written(
    trained_mlp, imbalanced_data, tmp_path, capsys
):
    """Lightning refuses to resume past ``max_epochs`` only as it restores the loops, in a traceback after the
    run's config.yaml was rewritten."""
    logs = tmp_path / "logs"
    run = copy_run(trained_mlp, logs)
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    every_counter(fit_loop(checkpoint)["epoch_progress"], 5)
    torch.save(checkpoint, last)
    line = resume_refused(imbalanced_data, logs, tmp_path, capsys)
    assert f"{last} reached epoch 5, past --trainer.max_epochs 3" in line


def test_validate_and_test_restore_no_optimizer_and_need_none(trained_mlp, imbalanced_data, tmp_path):
    last = attacked(copy_run(trained_mlp, tmp_path / "handed_over"), "optimizer_states missing")
    main(cli_args("validate", "mlp", imbalanced_data, tmp_path / "logs", "--ckpt_path", str(last),
                  "--trainer.enable_progress_bar", "false"))  # fmt: skip


@pytest.mark.parametrize("content", ["{not json", '{"sessions": [{"wall_s": "long"}]}'], ids=["not JSON", "no time"])
def test_a_malformed_environment_json_of_a_resumed_run_is_one_error_line_before_anything_is_written(
    trained_mlp, imbalanced_data, tmp_path, capsys, content
):
    """A resumed fit adds its session to the run's environment.json: one that holds no record of the earlier
    sessions was refused only as the fit started, its config.yaml already rewritten. It is read as the run folder
    is taken, before anything is written."""
    logs = tmp_path / "logs"
    environment = copy_run(trained_mlp, logs) / "environment.json"
    environment.write_text(content)
    line = resume_refused(imbalanced_data, logs, tmp_path, capsys)
    assert str(environment) in line and "move it aside" in line
