"""What a Lightning user types and expects works: the overlay config alone, nothing written into the
current folder, tables whole when piped, a fit that says where its results went, quiet output, and
predictions of the DataModule's batches in a loop of one's own."""

from __future__ import annotations

import io
import shutil

import pytest
import torch
import yaml
from conftest import cli_args, run_cli, write_binary_version
from pytorch_lightning import Trainer
from pytorch_lightning.utilities.model_summary import summarize
from rich.console import Console
from rich.table import Table

from cifar_bench.data import CIFAR10DataModule
from cifar_bench.models import CNNClassifier
from cifar_bench.output import print_whole


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One epoch of the MLP from its overlay config alone, run in an empty current folder by its own Python
    process: every test using it is marked slow."""
    root = tmp_path_factory.mktemp("habits")
    write_binary_version(root / "data")
    (root / "cwd").mkdir()
    result = run_cli(
        *cli_args("fit", "mlp", root / "data", root / "logs", "--trainer.max_epochs", "1"), cwd=root / "cwd"
    )
    return root, result


@pytest.mark.slow
def test_the_model_overlay_alone_trains_with_base_yaml_applied_by_default(fitted):
    root, result = fitted
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load((root / "logs" / "mlp" / "version_0" / "config.yaml").read_text())
    assert saved["trainer"]["logger"]["class_path"].endswith("TensorBoardLogger")
    assert any(callback["class_path"].endswith("RestoreRandomState") for callback in saved["trainer"]["callbacks"])


@pytest.mark.slow
def test_a_fit_ends_by_saying_where_its_results_went_and_what_to_run_next(fitted):
    root, result = fitted
    run = root / "logs" / "mlp" / "version_0"
    assert f"Run folder: {run}" in result.stdout
    assert "Best checkpoint (val/acc " in result.stdout and str(run / "checkpoints") in result.stdout
    assert f"Last checkpoint: {run / 'checkpoints' / 'last.ckpt'}" in result.stdout
    assert "Next: make evaluate CKPT=" in result.stdout


@pytest.mark.slow
def test_known_third_party_noise_is_silenced(fitted):
    _, result = fitted
    output = result.stdout + result.stderr
    for noise in (
        "litlogger",
        "LeafSpec",
        "overridden `on_after_batch_transfer`",
        "v_num",
        "logging interval",
        "args parameter is intended to run from within Python",
    ):
        assert noise not in output


@pytest.mark.slow
def test_a_resumed_fit_does_not_warn_that_its_own_checkpoint_folder_is_not_empty(fitted, tmp_path):
    root, _ = fitted
    shutil.copytree(root / "logs", tmp_path / "logs")
    args = cli_args("fit", "mlp", root / "data", tmp_path / "logs", "--trainer.max_epochs", "2", "--ckpt_path", "last")
    result = run_cli(*args, cwd=root / "cwd")
    assert result.returncode == 0, result.stderr
    assert "Restored all states" in result.stdout + result.stderr
    assert "exists and is not empty" not in result.stdout + result.stderr


@pytest.mark.slow
def test_with_the_logger_off_nothing_lands_in_the_current_folder_outside_lightning_logs(fitted):
    root, _ = fitted
    cwd = root / "cwd"
    words = cli_args(
        "fit", "mlp", root / "data", root / "logs", "--trainer.max_epochs", "1", "--trainer.logger", "false"
    )
    at = words.index("--trainer.default_root_dir")
    result = run_cli(*words[:at], *words[at + 2 :], cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert [path.name for path in cwd.iterdir()] == ["lightning_logs"]
    assert (cwd / "lightning_logs" / "checkpoints" / "last.ckpt").is_file()
    assert not list(cwd.rglob("config.yaml"))
    assert "No logger: no run folder was written" in result.stdout


def test_the_model_summary_shows_layer_shapes_and_flops():
    summary = summarize(CNNClassifier(), max_depth=1)
    assert summary.total_flops > 0
    assert "[1, 10]" in str(summary)


def test_tables_are_printed_whole_when_output_is_not_a_terminal():
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False)
    table = Table(title="wide")
    for index in range(8):
        table.add_column(f"training time {index}")
    table.add_row(*[f"{index}m 30s of Lightning" for index in range(8)])
    print_whole(console, table)
    assert "…" not in out.getvalue()
    assert all(f"training time {index}" in out.getvalue() for index in range(8))
    assert console.width == 80


def test_a_loop_of_ones_own_predicts_datamodule_batches_as_the_trainer_does(tmp_path):
    """``predict_logits`` evaluates (Dropout and BatchNorm in eval mode, no augmentation) whatever mode the
    model is in, and leaves that mode as it was; ``trainer.predict`` gives the same probabilities."""
    write_binary_version(tmp_path)
    datamodule = CIFAR10DataModule(tmp_path, download=False, val_size=20, eval_batch_size=16)
    datamodule.setup("fit")
    torch.manual_seed(0)
    model = CNNClassifier(widths=(4, 8, 8), hidden=(16, 16), batch_norm=True, dropout=0.5)
    images, _, _ = next(iter(datamodule.val_dataloader()))
    logits = model.predict_logits(images)
    assert model.training and logits.dtype == torch.float32 and logits.shape == (16, 10)
    model.eval()
    with torch.no_grad():
        expected = model(model.prepare_inputs(images))
    torch.testing.assert_close(logits, expected)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (first, *_) = trainer.predict(model, dataloaders=datamodule.val_dataloader())
    torch.testing.assert_close(first, model.predict(images))
