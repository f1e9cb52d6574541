"""Interrupted runs resume exactly; a non-finite loss stops training and keeps the last good checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_batches, write_binary_version

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    write_binary_version(root, tiny_batches(per_batch=60))
    return root


def fit(data_dir: Path, logs: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    """A small but complete cnn_bn_do run (augmentation, Dropout, BatchNorm) in its own process."""
    command = [
        sys.executable, "-m", "cifar_bench", "fit",
        "--config", str(REPO / "configs/base.yaml"), "--config", str(REPO / "configs/cnn_bn_do.yaml"),
        "--model.widths", "[8, 16, 16]", "--model.hidden", "[32, 32]",
        "--data.data_dir", str(data_dir), "--data.download", "false", "--data.val_size", "40",
        "--data.batch_size", "16", "--data.eval_batch_size", "20",
        "--trainer.max_epochs", "3", "--trainer.deterministic", "true", "--trainer.enable_progress_bar", "false",
        "--trainer.logger.init_args.save_dir", str(logs), "--trainer.logger.init_args.name", name,
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)])}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def final_state(logs: Path, name: str) -> dict:
    checkpoint = torch.load(logs / name / "version_0/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    return {"epoch": checkpoint["epoch"], "step": checkpoint["global_step"], "weights": checkpoint["state_dict"]}


def callback(class_name: str, **init_args) -> str:
    return "--trainer.callbacks+=" + json.dumps({"class_path": f"killer.{class_name}", "init_args": init_args})


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory) -> dict:
    logs = tmp_path_factory.mktemp("logs")
    result = fit(data_dir, logs, "uninterrupted")
    assert result.returncode == 0, result.stderr[-2000:]
    return final_state(logs, "uninterrupted")


@pytest.mark.parametrize(
    "where, epoch, batch",
    [("train", 1, 2), ("val", 1, 1), ("checkpoint", 1, 0)],
    ids=["mid-epoch", "mid-validation", "mid-checkpoint"],
)
def test_a_killed_run_resumed_from_last_ends_exactly_like_an_uninterrupted_one(data_dir, tmp_path, uninterrupted, where, epoch, batch):
    killed = fit(data_dir, tmp_path, "run", callback("KillAt", where=where, epoch=epoch, batch=batch))
    assert killed.returncode == -9, "the run should have been killed"

    resumed = fit(data_dir, tmp_path, "run", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Restored all states" in resumed.stdout + resumed.stderr

    final = final_state(tmp_path, "run")
    assert (final["epoch"], final["step"]) == (uninterrupted["epoch"], uninterrupted["step"])
    for key, tensor in uninterrupted["weights"].items():
        assert torch.equal(final["weights"][key], tensor), key
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["version_0"], "resume must continue in the same folder"


def test_a_nan_loss_stops_training_with_one_error_line_and_keeps_the_last_good_checkpoint(data_dir, tmp_path):
    broken = fit(data_dir, tmp_path, "nan", callback("PoisonWeightsAt", epoch=1, batch=2))
    assert broken.returncode == 2
    error_lines = [line for line in broken.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "Traceback" not in broken.stderr
    assert "became nan at epoch 1, step 2" in error_lines[0]

    last = tmp_path / "nan/version_0/checkpoints/last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 0, "last.ckpt must still be the good one from the end of epoch 0"
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values() if t.is_floating_point())
    assert str(last.parent) in error_lines[0]
