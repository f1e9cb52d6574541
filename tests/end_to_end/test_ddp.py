"""Scale-out: two-process DDP on the CPU (gloo) shards the batches and reduces the metrics across ranks."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import PER_BATCH, cli_args, cli_command, cli_environment, write_binary_version
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cifar_bench.training.lightning_cli import run_lightning_cli

pytestmark = pytest.mark.slow

VAL_IMAGES, BATCH = 21, 8  # an odd split: the ranks get 11 images each, image 0 twice (DistributedSampler's padding)
TRAIN_IMAGES = 5 * PER_BATCH - VAL_IMAGES


def arguments(subcommand: str, data_dir: Path, logs: Path, *extra: str) -> list[str]:
    return cli_args(
        subcommand,
        "mlp",
        data_dir,
        logs,
        "--trainer.precision",
        "32-true",
        *extra,
        val_size=VAL_IMAGES,
        batch_size=BATCH,
        eval_batch_size=4,
    )


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[Path, Path]:
    """One epoch of the MLP on two CPU processes; Lightning's launcher re-runs this command for rank 1."""
    root = tmp_path_factory.mktemp("ddp")
    data_dir = root / "data"
    data_dir.mkdir()
    write_binary_version(data_dir)
    command = cli_command(*arguments(
        "fit", data_dir, root / "logs",
        "--trainer.accelerator", "cpu",
        "--trainer.devices", "2",
        "--trainer.strategy", "ddp",
        "--trainer.max_epochs", "1",
    ))  # fmt: skip
    env = cli_environment()
    # Its own session, so that a hang can be ended for both ranks at once (rank 1 is rank 0's child).
    process = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(
            f"two-process DDP did not finish in 180 s (a collective that not every rank joined?):\n{output[-3000:]}"
        )
    assert process.returncode == 0, output[-3000:]
    return data_dir, root / "logs" / "mlp" / "version_0"


def test_each_rank_trains_on_half_of_the_batches(ddp_run):
    _, run = ddp_run
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    single_process_steps = -(-TRAIN_IMAGES // BATCH)
    assert checkpoint["global_step"] == -(-(TRAIN_IMAGES // 2) // BATCH) < single_process_steps


def test_validation_metrics_are_reduced_over_the_whole_split_not_one_ranks_half(ddp_run, tmp_path):
    data_dir, run = ddp_run
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    logged = {
        tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"] if tag.startswith(("val/", "train/"))
    }
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= set(logged)

    single = run_lightning_cli(
        arguments("validate", data_dir, tmp_path, "--ckpt_path", str(run / "checkpoints" / "last.ckpt"))
    )
    images, labels = single.datamodule.split("val")
    # Both ranks together saw the whole split plus the padding image, exactly once each otherwise.
    seen = torch.cat([torch.arange(VAL_IMAGES), torch.tensor([0])])
    with torch.no_grad():
        logits = single.model.eval()(single.model.prepare_inputs(images[seen]))
    assert logged["val/loss"] == pytest.approx(F.cross_entropy(logits, labels[seen]).item(), rel=1e-5)
    assert logged["val/acc"] == pytest.approx((logits.argmax(1) == labels[seen]).float().mean().item(), abs=1e-6)
    whole_split = {
        tag: float(value) for tag, value in single.trainer.callback_metrics.items() if tag.startswith("val/")
    }
    assert len(whole_split) > 30 and set(whole_split) <= set(logged)

    # Rank 0 alone (every other validation image) would have logged something else.
    rank0_loss = F.cross_entropy(
        logits[: (VAL_IMAGES + 1) // 2 * 2 : 2], labels[seen][: (VAL_IMAGES + 1) // 2 * 2 : 2]
    ).item()
    assert rank0_loss != pytest.approx(logged["val/loss"], rel=1e-3)
