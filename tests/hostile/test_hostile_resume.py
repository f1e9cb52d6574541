"""Issue 33's attacks by a handed-over run folder or working folder on fit and study, each performed:
the working folder on a child's import path, a checkpoint's callback state choosing what is deleted,
links in a run folder written through, a checkpoint choosing paths, a planted ``last*.ckpt``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from conftest import cli_args, copy_run, snapshot, with_random_weights

from cifar_bench import study
from cifar_bench.cli import main
from cifar_bench.models.networks import VGG16


@pytest.mark.slow
def test_a_package_planted_in_the_working_folder_is_not_run_by_studys_children(tmp_path, monkeypatch):
    """``python -m cifar_bench`` puts the working folder first on the import path: a ``cifar_bench/`` planted
    there would run in place of the installed package. The study's children start with ``-P``."""
    planted = tmp_path / "cifar_bench"
    planted.mkdir()
    (planted / "__init__.py").write_text("")
    (planted / "__main__.py").write_text("open('planted-code-ran', 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    assert study.cifar_bench("--help") == 0
    assert not (tmp_path / "planted-code-ran").exists()


def with_callback_paths(run: Path, **paths: str) -> None:
    """The run's last.ckpt with ``paths`` set in the state of each ModelCheckpoint it records."""
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    for key, state in checkpoint["callbacks"].items():
        if key.startswith("ModelCheckpoint"):
            state.update(paths, dirpath=str(run / "checkpoints"))
    torch.save(checkpoint, last)


def test_a_checkpoints_callback_state_never_chooses_what_a_resumed_fit_deletes(trained_mlp, imbalanced_data, tmp_path):
    """Lightning restores a ModelCheckpoint's paths from the file and, at the first save of the resumed fit,
    removes the previous 'best' or 'last' recursively: a path climbing out of the run deleted a folder
    outside it. Only paths of files directly in the checkpoint's own folder are taken from it."""
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    run = copy_run(trained_mlp, tmp_path / "logs")
    climbing = str(run / "checkpoints" / ".." / ".." / ".." / ".." / "precious")
    with_callback_paths(run, best_model_path=climbing, last_model_path=climbing, kth_best_model_path=climbing,
                        best_k_models={climbing: torch.tensor(0.0)})  # fmt: skip
    main(cli_args("fit", "mlp", imbalanced_data, tmp_path / "logs", "--ckpt_path", "last", "--trainer.max_epochs",
                  "3", "--trainer.enable_progress_bar", "false"))  # fmt: skip
    assert (victim / "thesis.tex").read_text() == "years of work"
    assert torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 2


def test_a_checkpoints_own_callback_state_is_restored_so_the_earlier_best_is_replaced_not_kept(
    trained_mlp, imbalanced_data, tmp_path
):
    run = copy_run(trained_mlp, tmp_path / "logs")
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    for key, state in checkpoint["callbacks"].items():  # the copy's own folder, as a run trained there records it
        if key.startswith("ModelCheckpoint"):
            old, new = str(state["dirpath"]), str(run / "checkpoints")
            for field in ("dirpath", "best_model_path", "kth_best_model_path", "last_model_path"):
                state[field] = state[field].replace(old, new, 1)
            state["best_k_models"] = {
                path.replace(old, new, 1): score for path, score in state["best_k_models"].items()
            }
    torch.save(checkpoint, last)
    main(cli_args("fit", "mlp", imbalanced_data, tmp_path / "logs", "--ckpt_path", "last", "--trainer.max_epochs",
                  "3", "--trainer.enable_progress_bar", "false"))  # fmt: skip
    assert len(list((run / "checkpoints").glob("epoch*.ckpt"))) == 1, "save_top_k 1 knew of the earlier best"


MALFORMED_CHECKPOINT_STATES = {  # each was a traceback after the run's config.yaml was written
    "a folder with a NUL": lambda state: state.update(dirpath=state["dirpath"] + "\0x"),  # realpath: ValueError
    "no best_model_path": lambda state: state.pop("best_model_path"),  # Lightning: KeyError
}


@pytest.mark.parametrize("malform", MALFORMED_CHECKPOINT_STATES.values(), ids=MALFORMED_CHECKPOINT_STATES.keys())
def test_a_checkpoints_callback_state_lightning_would_fail_on_is_not_restored_and_the_fit_resumes(
    trained_mlp, imbalanced_data, tmp_path, malform
):
    run = copy_run(trained_mlp, tmp_path / "logs")
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    for key, state in checkpoint["callbacks"].items():
        if key.startswith("ModelCheckpoint"):
            state.update(dirpath=str(run / "checkpoints"))
            malform(state)
    torch.save(checkpoint, last)
    main(cli_args("fit", "mlp", imbalanced_data, tmp_path / "logs", "--ckpt_path", "last", "--trainer.max_epochs",
                  "3", "--trainer.enable_progress_bar", "false"))  # fmt: skip
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 2


def test_ckpt_path_last_is_the_runs_last_ckpt_and_never_a_planted_last_something(
    trained_mlp, imbalanced_data, tmp_path
):
    """Lightning's own ``last`` loads the newest ``last*.ckpt`` in the folder, unchecked: with no last.ckpt, a
    planted ``last_x.ckpt`` was resumed from. ``last`` means ``<run>/checkpoints/last.ckpt`` and nothing else:
    where there is none, the fit starts afresh."""
    run = copy_run(trained_mlp, tmp_path / "logs")
    (run / "checkpoints" / "last.ckpt").rename(run / "checkpoints" / "last_x.ckpt")  # at epoch 1 of 2
    main(cli_args("fit", "mlp", imbalanced_data, tmp_path / "logs", "--ckpt_path", "last", "--trainer.max_epochs",
                  "1", "--trainer.logger.init_args.version", "0", "--trainer.enable_progress_bar", "false"))  # fmt: skip
    assert torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["epoch"] == 0


def test_a_truncated_last_ckpt_is_one_error_line(trained_mlp, imbalanced_data, tmp_path, capsys):
    run = copy_run(trained_mlp, tmp_path / "logs")
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:5000])
    with pytest.raises(SystemExit) as exit_info:
        main(
            cli_args(
                "fit", "mlp", imbalanced_data, tmp_path / "logs", "--ckpt_path", "last", "--trainer.max_epochs", "3"
            )
        )
    assert exit_info.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "is truncated or not a checkpoint" in line


@pytest.mark.slow  # two VGG16 fits on the CPU
def test_a_checkpoint_never_chooses_where_a_fit_reads_or_writes_its_feature_store(tiny_binary_data, tmp_path):
    """LightningCLI lays a checkpoint's hyperparameters over the command line's: ``fit --ckpt_path FILE`` made
    (or read) the feature store where the file said, not where ``--model.feature_store`` said."""
    weights, chosen_by_file, chosen_by_user = tmp_path / "w.pth", tmp_path / "file_store", tmp_path / "user_store"
    with torch.device("meta"):
        net = VGG16(fold_fc6=True)
    torch.save(with_random_weights(net.features).state_dict(prefix="features."), weights)

    def fit(*words: str) -> None:
        main(cli_args("fit", "vgg16_last3", tiny_binary_data, tmp_path / "logs", "--model.weights", str(weights),
                      "--model.store_views", "1", "--model.fresh_epochs", "0", "--model.warmup_epochs", "0",
                      "--trainer.limit_train_batches", "1",
                      "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false", *words))  # fmt: skip

    fit("--model.feature_store", str(chosen_by_file), "--trainer.max_epochs", "1")
    shutil.rmtree(chosen_by_file)
    (last,) = (tmp_path / "logs").glob("vgg16_last3/version_0/checkpoints/last.ckpt")
    with pytest.raises(SystemExit):  # a command line building another model names no store to put in its place
        main(cli_args("fit", "mlp", tiny_binary_data, tmp_path / "mlp_logs", "--ckpt_path", str(last)))
    assert not chosen_by_file.exists()
    fit("--model.feature_store", str(chosen_by_user), "--trainer.max_epochs", "2", "--ckpt_path", str(last))
    assert not chosen_by_file.exists()
    assert any(chosen_by_user.iterdir())


def resume(data: Path, logs: Path, *words: str) -> None:
    main(cli_args("fit", "mlp", data, logs, "--ckpt_path", "last", "--trainer.max_epochs", "3",
                  "--trainer.enable_progress_bar", "false", *words))  # fmt: skip


def test_a_config_yaml_linked_elsewhere_is_replaced_not_written_through(trained_mlp, imbalanced_data, tmp_path):
    victim = tmp_path / "victim.yaml"
    victim.write_text("mine\n")
    run = copy_run(trained_mlp, tmp_path / "logs")
    (run / "config.yaml").unlink()
    (run / "config.yaml").symlink_to(victim)
    resume(imbalanced_data, tmp_path / "logs")
    assert victim.read_text() == "mine\n"
    assert not (run / "config.yaml").is_symlink() and "VGG16" not in (run / "config.yaml").read_text()


@pytest.mark.parametrize("linked", ["version_0", "version_0/checkpoints"])
def test_a_run_folder_or_its_checkpoints_linked_elsewhere_is_refused_before_anything_is_written(
    trained_mlp, imbalanced_data, tmp_path, capsys, linked
):
    """``--ckpt_path last`` resumes the newest version holding a last.ckpt: one that is a link (or whose
    ``checkpoints/`` is) took the fit's writes, the lock file included, out of the log folder."""
    logs, elsewhere = tmp_path / "logs", tmp_path / "elsewhere"
    run = copy_run(trained_mlp, logs)
    shutil.move(logs / "mlp" / linked, elsewhere)
    (logs / "mlp" / linked).symlink_to(elsewhere)
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        resume(imbalanced_data, logs)
    assert exit_info.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert f"{logs / 'mlp' / linked} is a link" in line
    assert snapshot(tmp_path) == before
    assert run.exists()


@pytest.mark.parametrize("plant", ["folder", "link"])
def test_a_versions_lock_that_is_a_folder_or_a_link_is_one_error_line(imbalanced_data, tmp_path, capsys, plant):
    lock = tmp_path / "logs" / "mlp" / ".versions.lock"
    lock.parent.mkdir(parents=True)
    lock.mkdir() if plant == "folder" else lock.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SystemExit) as exit_info:
        main(cli_args("fit", "mlp", imbalanced_data, tmp_path / "logs", "--trainer.max_epochs", "1"))
    assert exit_info.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert f"cannot lock {lock}" in line
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("part", ["python", "numpy", "torch"])
def test_a_checkpoint_with_a_malformed_random_state_is_one_error_line(
    trained_mlp, imbalanced_data, tmp_path, capsys, part
):
    run = copy_run(trained_mlp, tmp_path / "logs")
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    checkpoint["callbacks"]["RestoreRandomState"][part] = "not a state"
    torch.save(checkpoint, last)
    with pytest.raises(SystemExit) as exit_info:
        resume(imbalanced_data, tmp_path / "logs")
    assert exit_info.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "random-number state is not one cifar-bench saved" in line
