"""More than one machine: two torchrun "nodes" of one CPU process each, on the loopback (gloo), train as one
run, log what a single process with their combined batch logs, write through rank 0 only, and resume.

Same data, precisely: each rank takes every other image of the epoch's seeded order, so the two ranks'
batches of 9 together are the single process's batch of 18 (180 training images: no rank is padded), and
DDP averages their gradients as that batch's mean loss would. Sums run in another order across processes,
so the values agree to float rounding, not bit for bit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import PER_BATCH, cli_args, cli_environment, run_cli, write_binary_version
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.slow

VAL_IMAGES, RANK_BATCH = 20, 9
STEPS = (5 * PER_BATCH - VAL_IMAGES) // (2 * RANK_BATCH)  # 10 a epoch, the same for both ways of running


def arguments(data_dir: Path, logs: Path, batch_size: int, *extra: str) -> list[str]:
    return cli_args(
        "fit", "mlp", data_dir, logs,
        "--trainer.precision", "32-true", "--trainer.enable_progress_bar", "false",
        "--model.init_args.lr_schedule", "constant", "--trainer.accelerator", "cpu", *extra,
        val_size=VAL_IMAGES, batch_size=batch_size, eval_batch_size=5,
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_nodes(root: Path, *words: str) -> None:
    """``torchrun --nnodes 2 --nproc_per_node 1`` started twice, as on two machines meeting at one endpoint."""
    torchrun = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "test",
        "-m", "cifar_bench", *words, "--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.strategy", "ddp",
    ]  # fmt: skip
    nodes = [
        subprocess.Popen(
            torchrun,
            cwd=root,
            env=cli_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        outputs = [node.communicate(timeout=400)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
    for node, output in zip(nodes, outputs):
        assert node.returncode == 0, output[-4000:]


def epoch_metrics(run: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    tags = ("train/loss", "train/acc", "val/loss", "val/acc")
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in tags}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two epochs of the MLP: on two nodes (one epoch, then resumed for the second), and in one process."""
    root = tmp_path_factory.mktemp("nodes")
    data_dir = root / "data"
    write_binary_version(data_dir)
    logs = root / "logs"
    two_nodes(root, *arguments(data_dir, logs, RANK_BATCH, "--trainer.max_epochs", "1"))
    first_session = sorted(path.name for path in (logs / "mlp/version_0").iterdir())
    two_nodes(root, *arguments(data_dir, logs, RANK_BATCH, "--trainer.max_epochs", "2", "--ckpt_path", "last"))
    single = run_cli(*arguments(data_dir, root / "single", 2 * RANK_BATCH, "--trainer.max_epochs", "2"))
    assert single.returncode == 0, single.stderr[-3000:]
    return {
        "root": root,
        "run": logs / "mlp/version_0",
        "first_session": first_session,
        "single": root / "single/mlp/version_0",
    }


def test_two_nodes_log_what_one_process_with_their_combined_batch_logs(runs):
    nodes, single = epoch_metrics(runs["run"]), epoch_metrics(runs["single"])
    for tag, values in single.items():
        assert [step for step, _ in nodes[tag]] == [step for step, _ in values] == [STEPS - 1, 2 * STEPS - 1], tag
        assert [value for _, value in nodes[tag]] == pytest.approx([value for _, value in values], rel=1e-4), tag
    checkpoint = torch.load(runs["run"] / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (1, 2 * STEPS), "the resumed run went on to epoch 2"


def test_only_rank_0_writes_one_run_folder_with_one_event_file_and_one_session_record_a_session(runs):
    root, run = runs["root"], runs["run"]
    assert sorted(path.name for path in root.iterdir()) == ["data", "logs", "single"], "nothing in the current folder"
    assert [path.name for path in (root / "logs/mlp").glob("version_*")] == ["version_0"]
    assert sum(name.startswith("events.out.tfevents.") for name in runs["first_session"]) == 1
    assert len(list(run.glob("events.out.tfevents.*"))) == 2, "one event file for each of the two sessions"
    sessions = json.loads((run / "environment.json").read_text())["sessions"]
    assert [session["epochs_done"] for session in sessions] == [1, 2]
    assert sorted(path.name for path in (run / "checkpoints").iterdir())[-1] == "last.ckpt"
