"""Training through the real command line (LightningCLI) on a tiny CIFAR-10 copy.

Every config trains, validates and tests; one short shared run is then inspected for what a user
relies on: saved hyperparameters, checkpoints that reload to the same predictions, TensorBoard
scalars and figures. Resuming gets its own run, since it appends to one.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import yaml
from conftest import PER_BATCH, cli_args, packed
from pytorch_lightning import Trainer
from pytorch_lightning.utilities import rank_zero_only
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision.models import VGG16_Weights

from cifar_bench import environment
from cifar_bench.cli import main
from cifar_bench.configs import model_names
from cifar_bench.data import CLASS_NAMES, CIFAR10DataModule
from cifar_bench.data.sources import BINARY_FOLDER
from cifar_bench.environment import default_precision
from cifar_bench.evaluation.reference import STUDY_COUNTS, STUDY_TABLE
from cifar_bench.models import MLPClassifier, VGG16Classifier
from cifar_bench.training import lightning_cli
from cifar_bench.training.lightning_cli import read_data_first, run_lightning_cli
from cifar_bench.training.trainer_settings import check_trainer_settings

MODELS = model_names()
WEIGHT_LAYERS = {"mlp": 3, "cnn": 9, "cnn_bn_do": 9, "vgg16_last2": 16, "vgg16_last3": 16, "vgg16_last5": 16}
# VGG16 builds 138M parameters: random weights (no download), tiny batches; one variant uses the cache.
QUICK = {
    "vgg16_last2": ["--model.weights", "none", "--data.batch_size", "4", "--model.feature_store", "null"],
    "vgg16_last3": ["--model.weights", "none", "--data.batch_size", "4", "--model.feature_store", "null"],
    "vgg16_last5": ["--model.weights", "none", "--data.batch_size", "4", "--model.feature_store", "null"],
}
VAL_IMAGES, BATCH = 20, 8
TRAIN_IMAGES = 5 * PER_BATCH - VAL_IMAGES  # the tiny copy's five training batches, less validation


def arguments(subcommand: str, model: str, data_dir: Path, logs: Path, *extra: str) -> list[str]:
    """A command line as a user would type it, with data and every file the run writes under tmp."""
    return cli_args(subcommand, model, data_dir, logs, *extra, val_size=VAL_IMAGES, batch_size=BATCH)


def scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


# --- every config, one batch -------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.slow
def test_each_config_fits_validates_and_tests_one_batch(model, tiny_binary_data, tmp_path):
    quick = QUICK.get(model, [])
    fit = run_lightning_cli(arguments("fit", model, tiny_binary_data, tmp_path, "--trainer.fast_dev_run", "1", *quick))
    assert fit.model.weight_layers == WEIGHT_LAYERS[model]
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= set(fit.trainer.callback_metrics)
    for stage in ("validate", "test"):
        cli = run_lightning_cli(
            arguments(stage, model, tiny_binary_data, tmp_path, "--trainer.fast_dev_run", "1", *quick)
        )
        prefix = "val" if stage == "validate" else "test"
        assert {f"{prefix}/acc", f"{prefix}/f1_macro", f"{prefix}/class_acc/cat"} <= set(cli.trainer.callback_metrics)
    # A dry run writes no checkpoint (Lightning 2.6 would put last.ckpt in default_root_dir with save_last).
    assert not list(tmp_path.rglob("*.ckpt"))


# --- one short run, inspected --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_binary_data, tmp_path_factory):
    """One epoch of the MLP with a learning rate and batch size given on the command line."""
    logs = tmp_path_factory.mktemp("logs")
    cli = run_lightning_cli(
        arguments(
            "fit",
            "mlp",
            tiny_binary_data,
            logs,
            "--trainer.max_epochs",
            "1",
            "--model.lr",
            "0.123",
            "--data.batch_size",
            "16",
        )
    )
    return cli, logs / "mlp" / "version_0"


def test_command_line_overrides_land_in_the_saved_hyperparameters(trained):
    _, run = trained
    saved = yaml.safe_load((run / "hparams.yaml").read_text())
    assert (saved["lr"], saved["batch_size"]) == (0.123, 16)
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["lr"] == 0.123
    assert checkpoint["datamodule_hyper_parameters"]["batch_size"] == 16
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["model"]["init_args"]["lr"], config["data"]["batch_size"]) == (0.123, 16)


def test_checkpoints_keep_the_best_epoch_and_the_last_one(trained):
    _, run = trained
    names = sorted(path.name for path in (run / "checkpoints").iterdir())
    assert names[-1] == "last.ckpt" and names[0].startswith("epoch000-val_acc")
    assert len(names) == 2


def predictions(model, datamodule) -> torch.Tensor:
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    return torch.cat(trainer.predict(model, datamodule=datamodule))


def test_a_reloaded_checkpoint_predicts_the_same_class_probabilities(trained):
    cli, run = trained
    before = predictions(cli.model, cli.datamodule)
    path = run / "checkpoints" / "last.ckpt"
    restored = MLPClassifier.load_from_checkpoint(path, weights_only=True)
    after = predictions(restored, CIFAR10DataModule.load_from_checkpoint(path))
    assert before.shape == (PER_BATCH, 10)  # the test batch
    assert torch.allclose(before.sum(dim=1), torch.ones(PER_BATCH))
    assert torch.equal(before, after)


def test_tensorboard_holds_the_epoch_scalars_and_the_validation_figures(trained):
    _, run = trained
    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    expected = {"train/loss", "train/acc", "val/loss", "val/acc", "val/f1_macro", "val/precision_macro"}
    expected |= {f"val/class_acc/{name}" for name in CLASS_NAMES} | {"model/trainable_params", "model/weight_layers"}
    assert expected <= set(tags["scalars"])
    assert any(tag.startswith("lr-") for tag in tags["scalars"])
    assert [event.value for event in events.Scalars("model/trainable_params")] == [1_707_274]
    for figure in ("val/confusion_matrix", "val/sample_predictions"):
        (image,) = events.Images(figure)  # one validation epoch, sanity check not drawn
        assert image.encoded_image_string.startswith(b"\x89PNG") and image.width > 100


@pytest.mark.slow
def test_last_checkpoint_is_the_final_epoch_even_when_val_acc_stops_improving(tiny_binary_data, tmp_path):
    # A learning rate too small to change any prediction: val/acc ties with epoch 0 from then on.
    epochs, steps = 3, 2
    frozen = ["--model.lr", "1e-12", "--trainer.max_epochs", str(epochs), "--trainer.limit_train_batches", str(steps)]
    run_lightning_cli(arguments("fit", "mlp", tiny_binary_data, tmp_path, *frozen))
    checkpoints = tmp_path / "mlp" / "version_0" / "checkpoints"
    best, last = sorted(path.name for path in checkpoints.iterdir())
    assert best.startswith("epoch000-val_acc") and last == "last.ckpt"
    checkpoint = torch.load(checkpoints / last, map_location="cpu", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (epochs - 1, epochs * steps)


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test"])
def test_a_run_chooses_its_version_only_under_the_lock_so_one_claimed_meanwhile_is_not_shared(
    subcommand, tiny_binary_data, tmp_path, monkeypatch
):
    """Another run in the same log folder may claim version_0 after this one starts and before it takes the
    versions lock: this run's version is read from the folder under the lock, so it gets version_1."""
    claim = lightning_cli.claim_version

    def another_run_claims_version_0_first(logger):
        (Path(logger.root_dir) / "version_0").mkdir(parents=True)
        claim(logger)

    monkeypatch.setattr(lightning_cli, "claim_version", another_run_claims_version_0_first)
    one_batch = [
        "--trainer.limit_train_batches",
        "1",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.limit_test_batches",
        "1",
    ]
    run_lightning_cli(arguments(subcommand, "mlp", tiny_binary_data, tmp_path, "--trainer.max_epochs", "1", *one_batch))
    assert not list((tmp_path / "mlp" / "version_0").iterdir()), "the other run's folder is left to it"
    assert (tmp_path / "mlp" / "version_1" / "config.yaml").is_file()


@pytest.mark.parametrize("plant", ["file", "dangling link"])
def test_a_file_where_the_next_version_folder_goes_is_one_error_line_and_stays(
    tiny_binary_data, tmp_path, capsys, plant
):
    """Lightning skips entries that are not folders when it numbers versions, so it picks that very name."""
    planted = tmp_path / "mlp" / "version_0"
    planted.parent.mkdir()
    planted.write_text("kept\n") if plant == "file" else planted.symlink_to(tmp_path / "nowhere")
    with pytest.raises(SystemExit) as exit_info:
        main(arguments("fit", "mlp", tiny_binary_data, tmp_path, "--trainer.max_epochs", "1"))
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: cannot create the run folder") and "version_0 (File exists)" in line
    assert planted.is_symlink() or planted.read_text() == "kept\n"
    assert not (tmp_path / "nowhere").exists()


def test_a_time_based_validation_interval_is_left_to_lightning():
    check_trainer_settings({"val_check_interval": "00:00:05:00", "max_steps": -1})


# --- resume ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_resuming_from_last_continues_the_epoch_count_in_the_same_run_folder(tiny_binary_data, tmp_path):
    steps_per_epoch = -(-TRAIN_IMAGES // BATCH)
    run_lightning_cli(arguments("fit", "mlp", tiny_binary_data, tmp_path, "--trainer.max_epochs", "1"))
    resumed = run_lightning_cli(
        arguments("fit", "mlp", tiny_binary_data, tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", "last")
    )
    assert [path.name for path in (tmp_path / "mlp").glob("version_*")] == ["version_0"]
    run = tmp_path / "mlp" / "version_0"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (1, 2 * steps_per_epoch)
    assert resumed.trainer.global_step == 2 * steps_per_epoch
    # Each epoch is logged once: the resumed run trained epoch 1 only, after epoch 0 of the first run.
    first, second = sorted(run.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    assert [value for _, value in scalars(first, "epoch")][-1] == 0
    assert {value for _, value in scalars(second, "epoch")} == {1}
    assert [step for step, _ in scalars(run, "train/loss")] == [steps_per_epoch - 1, 2 * steps_per_epoch - 1]


@pytest.mark.slow
def test_a_vgg16_run_training_pretrained_layers_resumes_from_its_checkpoint_file(tiny_binary_data, tmp_path):
    """As the study resumes (``--ckpt_path FILE``): vgg16_last5 trains conv5_2 and conv5_3 pretrained, in an
    optimizer group of their own. The resumed fit's optimizer state was checked against a model rebuilt from the
    checkpoint without its weights file, which has no pretrained layer: a real run could not be continued."""
    with torch.device("meta"):
        features = {
            k: v for k, v in VGG16Classifier(weights="none").net.state_dict().items() if k.startswith("features.")
        }
    weights = tmp_path / "vgg16_features.pth"
    torch.save({key: torch.randn(value.shape) * 0.01 for key, value in features.items()}, weights)
    fit = ["--model.weights", str(weights), "--model.feature_store", "null", "--data.batch_size", "4",
           "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.logger.init_args.version", "seed0"]  # fmt: skip
    run_lightning_cli(arguments("fit", "vgg16_last5", tiny_binary_data, tmp_path, *fit, "--trainer.max_epochs", "1"))
    last = tmp_path / "vgg16_last5" / "seed0" / "checkpoints" / "last.ckpt"
    saved_groups = torch.load(last, map_location="cpu", weights_only=True)["optimizer_states"][0]["param_groups"]
    assert len(saved_groups) == 2, "random fc6-fc8, and the pretrained conv5_2, conv5_3 at their own rate"
    resume = [*fit, "--trainer.max_epochs", "2", "--ckpt_path", str(last)]
    resumed = run_lightning_cli(arguments("fit", "vgg16_last5", tiny_binary_data, tmp_path, *resume))
    assert (resumed.trainer.current_epoch, resumed.trainer.global_step) == (2, 4)


# --- errors a user can make ---------------------------------------------------------------------------


@pytest.mark.slow
def test_imagenet_weights_offline_end_in_a_one_line_error(tiny_binary_data, tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(VGG16_Weights, "get_state_dict", offline)
    with pytest.raises(SystemExit) as exit_info:
        main(arguments("fit", "vgg16_last2", tiny_binary_data, tmp_path, "--trainer.fast_dev_run", "1"))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "error: could not fetch torchvision's VGG16 ImageNet weights" in error
    assert "Traceback" not in error


def test_an_invalid_model_option_ends_in_a_one_line_error(tiny_binary_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(arguments("fit", "mlp", tiny_binary_data, tmp_path, "--model.lr", "-1"))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: Parser key \"model\": Problem with given class_path 'cifar_bench.models.MLPClassifier': Parser key "
        '"lr": -1 does not conform to restriction v>0 (see cifar-bench fit --help)'
    )


def test_print_config_shows_the_merged_configuration(tiny_binary_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(arguments("fit", "cnn_bn_do", tiny_binary_data, tmp_path, "--model.lr", "0.3", "--print_config"))
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["class_path"] == "cifar_bench.models.CNNClassifier"
    assert config["model"]["init_args"]["batch_norm"] is True
    assert config["model"]["init_args"]["lr"] == 0.3
    assert config["trainer"]["logger"]["init_args"]["name"] == "cnn_bn_do"


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(False, False, "32-true"), (True, False, "bf16-mixed"), (False, True, "bf16-mixed")],
)
def test_cpu_precision_is_bf16_only_with_bf16_instructions(avx512_bf16, amx, expected, monkeypatch):
    """oneDNN accepts bf16 on any AVX-512 CPU, but without AVX512_BF16 or AMX it is emulated and ~4x slower."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_avx2_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert default_precision("cpu") == expected


def test_the_default_precision_follows_the_accelerator_that_will_run(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(environment, "cpu_has_native_bf16", lambda: False)
    assert (default_precision("auto"), default_precision("gpu"), default_precision("cpu")) == (
        "bf16-mixed",
        "bf16-mixed",
        "32-true",
    )


@pytest.mark.parametrize(
    ("given", "expected"), [((), "32-true"), (("--trainer.precision", "bf16-mixed"), "bf16-mixed")]
)
def test_a_cpu_run_on_a_machine_with_a_bf16_gpu_keeps_the_precision_given_or_gets_the_cpus(
    given, expected, tiny_binary_data, tmp_path, monkeypatch
):
    """The default is the accelerator's that will run (not the GPU's), and a precision given is never replaced."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(environment, "cpu_has_native_bf16", lambda: False)
    extra = ("--trainer.accelerator", "cpu", "--trainer.fast_dev_run", "1", "--trainer.enable_model_summary", "false")
    cli = run_lightning_cli(arguments("fit", "mlp", tiny_binary_data, tmp_path, *extra, *given))
    assert cli.trainer.precision == expected


# --- the data is read first, only where Lightning would prepare it --------------------------------------


@pytest.mark.parametrize(
    ("local_rank", "node_rank", "per_node", "prepares"),
    [(0, 0, True, True), (1, 0, True, False), (0, 1, True, True), (0, 1, False, False), (1, 1, False, False)],
)
def test_only_the_rank_that_prepares_the_data_unpacks_and_reads_it_before_the_trainer_starts(
    local_rank, node_rank, per_node, prepares, tmp_path, monkeypatch
):
    """The other DDP ranks read it in Lightning's own setup, after its barrier: an archive half unpacked by
    rank 0 is never read, nor unpacked twice at once."""
    archive = packed(tmp_path / "data")
    ranks = {"LOCAL_RANK": local_rank, "NODE_RANK": node_rank, "WORLD_SIZE": 4}
    for name, value in {**ranks, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}.items():
        monkeypatch.setenv(name, str(value))
    # The Trainer sets Lightning's process-wide rank; put it back after, or every later fit in this process
    # believes it is not rank 0 and writes no environment.json and no event files.
    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)
    trainer = Trainer(accelerator="cpu", strategy="ddp", devices=2, num_nodes=2, logger=False)
    assert (trainer.local_rank, trainer.node_rank) == (local_rank, node_rank)
    datamodule = CIFAR10DataModule(str(archive.parent), download=False, val_size=20)
    datamodule.prepare_data_per_node = per_node
    read_data_first(trainer, datamodule, "fit")
    assert (datamodule.arrays is not None) == prepares
    assert (archive.parent / BINARY_FOLDER).is_dir() == prepares


# --- a model by name, from any folder ----------------------------------------------------------------


def test_a_config_named_by_its_model_is_the_packaged_one_from_any_folder(
    tiny_binary_data, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", "cnn_bn_do", "--model.lr", "0.3", "--print_config"])
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["init_args"]["batch_norm"] is True
    assert config["trainer"]["logger"]["init_args"]["name"] == "cnn_bn_do"
    assert config["trainer"]["callbacks"], "base.yaml applies as well"


def test_the_study_results_are_kept_for_exactly_the_configured_models():
    assert sorted(STUDY_COUNTS) == sorted(STUDY_TABLE) == model_names()
