"""`python -m benchmarks` on a tiny dataset: every figure is there and the ratios follow from them (no timing asserted)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, tiny_batches, write_binary_version
from rich.console import Console
from torch import nn

from benchmarks import harness
from benchmarks.__main__ import main
from benchmarks.command import BenchSettings, bench
from benchmarks.measure import store_overrides
from benchmarks.roofline import network_flops_per_image, roofline
from benchmarks.tables import print_tables
from cifar_bench.environment import default_precision
from cifar_bench.evaluation.evaluate import logits_in_precision

# Small batches, so that the tiny training split holds every timed step of the package.
PACKAGE_ARGS = [
    "--data.val_size",
    "200",
    "--data.batch_size",
    "16",
    "--data.eval_batch_size",
    "100",
    "--trainer.accelerator",
    "cpu",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """Real timed trainings of every model: every test using it is marked slow."""
    root = tmp_path_factory.mktemp("bench")
    write_binary_version(root, tiny_batches(per_batch=200))  # 1,000 training images, 200 test images
    settings = BenchSettings(
        models=("mlp", "vgg16_last2"), sweep_models=("mlp",), data_dir=str(root), download=False, config_dir=str(CONFIGS),
        out=str(root / "out"), repeats=1, steps=2, warmup=1, eval_images=100, vgg_eval_images=100, vgg_steps=1, vgg_warmup=1,
        store_steps=2, feature_store=str(root / "store"), batch_sizes=(16, 32), threads=(1,), levers=True,
        accuracy_check=True, accuracy_model="mlp", accuracy_images=64, accuracy_epochs=1, fit_args=PACKAGE_ARGS,
    )  # fmt: skip
    written = bench(settings, console=Console(file=io.StringIO()))
    assert json.loads((root / "out" / "bench.json").read_text()) == json.loads(json.dumps(written))
    return written


@pytest.mark.slow
def test_bench_records_the_machine_and_the_settings(results):
    assert {"cpu", "cores", "torch_threads", "torch", "lightning"} <= set(results["machine"])
    assert results["settings"]["repeats"] == 1
    assert "--data.batch_size" in results["extra_args"]


@pytest.mark.slow
def test_bench_json_names_no_absolute_path_of_the_machine(results):
    """Its folders were all given outside the current folder: each is named by its name alone."""

    def strings(value):
        if isinstance(value, dict):
            return [text for item in value.values() for text in strings(item)]
        if isinstance(value, list):
            return [text for item in value for text in strings(item)]
        return [value] if isinstance(value, str) else []

    assert not [text for text in strings(results) if Path(text).is_absolute()]
    settings = results["settings"]
    assert (settings["out"], settings["feature_store"], settings["config_dir"]) == ("out", "store", "configs")
    assert (
        results["models"]["vgg16_last2"]["store"]["folder"]
        == Path(results["models"]["vgg16_last2"]["store"]["folder"]).name
    )


@pytest.mark.slow
def test_each_model_has_package_and_baseline_speeds_for_training_and_evaluation(results):
    for row in results["models"].values():
        for figures in (row["package"], row["baseline"], row["eval"]["package"], row["eval"]["baseline"]):
            assert figures["images_per_s"] > 0
            assert figures["epoch_s"] > 0
            assert len(figures["repeats_step_s"]) == 1
        assert row["package"]["batch_size"] == 16
        assert row["baseline"]["batch_size"] == 64  # the study's loop, whatever the package uses
        assert row["epoch_images"] == 800


@pytest.mark.slow
def test_vgg16_is_timed_fed_from_its_feature_store_and_with_the_whole_network(results):
    row = results["models"]["vgg16_last2"]
    assert row["ratios"]["store_fed_vs_uncached_epoch"] == pytest.approx(
        row["package"]["epoch_s"] / row["package_store_fed"]["epoch_s"]
    )
    store = row["store"]
    assert store["views"] == 8 and store["dtype"] == "float16" and store["build_s"] > 0
    # 8 augmented views and the plain view of the 1,000 training images, 512 x 2 x 2 float16 each; no test
    # images: a store holds their features only for a fit that validates on them, and the benchmark's does not.
    assert (8 * 1000 + 1000) * 2048 * 2 < store["bytes"] < (8 * 1000 + 1000 + 200) * 2048 * 2


@pytest.mark.slow
def test_levers_time_vgg16_without_the_fc6_fold_beside_the_shipped_config(results):
    levers = results["models"]["vgg16_last2"]["levers"]
    assert set(levers) == {"fc6 unfolded", "fc6 unfolded, store-fed"}
    assert all(figures["images_per_s"] > 0 for figures in levers.values())


@pytest.mark.slow
def test_sweeps_cover_each_batch_size_and_thread_count(results):
    points = {(row["batch_size"], row["threads"]) for row in results["sweeps"]}
    assert {(16, 1)} | {(size, results["machine"]["torch_threads"]) for size in (16, 32)} <= points
    for row in results["sweeps"]:
        assert row["epoch_s"] == pytest.approx(math.ceil(800 / row["batch_size"]) * row["step_s"])


@pytest.mark.slow
def test_accuracy_check_reports_fp32_and_bf16_test_accuracy(results):
    check = results["accuracy_check"]
    assert 0 <= check["32-true"]["test_acc"] <= 1 and 0 <= check["bf16-mixed"]["test_acc"] <= 1
    assert check["difference"] == pytest.approx(check["bf16-mixed"]["test_acc"] - check["32-true"]["test_acc"])


@pytest.mark.slow
def test_targets_name_only_what_was_measured(results):
    names = {target["target"] for target in results["targets"]}
    assert names == {
        "mlp package vs plain loop, time added",
        "vgg16_last2 store-fed tail, share of peak",
        "vgg16_last2 whole network, share of peak",
    }


def test_an_unknown_model_is_a_user_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--models", "[resnet]", "--config_dir", str(CONFIGS)])
    assert exit_info.value.code == 2
    assert "no config for resnet" in capsys.readouterr().err


def test_training_flops_of_a_small_network_are_the_hand_count_and_leave_it_untouched():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 32 * 32, 10)
    )
    conv, linear = 2 * (4 * 32 * 32) * (3 * 3 * 3), 2 * (4 * 32 * 32) * 10  # per image: 2 FLOPs per multiply-add
    # Both layers: forward and weight gradient; the linear layer also the gradient of its input (the images need none).
    assert network_flops_per_image(net) == 2 * conv + 3 * linear
    net[:2].requires_grad_(False)
    # A frozen convolution (and BatchNorm) runs forward only, and nothing before the linear layer wants its input gradient.
    assert network_flops_per_image(net) == conv + 2 * linear
    assert net.training and all(parameter.grad is None for parameter in net.parameters())
    assert net[1].num_batches_tracked == 0  # counted in eval mode: no BatchNorm statistics updated


def test_achieved_flop_rate_is_flops_per_step_over_seconds_per_step_and_its_fraction_is_of_the_peak():
    figures = roofline({"batch_size": 64, "step_s": 0.5}, flops_per_image=2e9, peak_gflop_s=512.0)
    assert figures["gflop_s"] == pytest.approx(256.0)
    assert figures["fraction_of_peak"] == pytest.approx(0.5)


@pytest.mark.slow
def test_each_training_arm_has_its_flop_rate_against_the_peak_of_its_precision(results):
    peaks = {peak["dtype"]: peak["gflop_s"] for peak in results["peaks"]}
    assert set(peaks) == {"float32", "bfloat16"} and all(value > 0 for value in peaks.values())
    package = (
        "bfloat16" if default_precision() == "bf16-mixed" else "float32"
    )  # the configs' precision follows the hardware
    for row in results["models"].values():
        arms = [(row["package"], package), (row["baseline"], "float32")]  # the study trained in fp32
        arms += [(row["package_store_fed"], package)] if "package_store_fed" in row else []
        for figures, dtype in arms:
            assert figures["peak_gflop_s"] == peaks[dtype]
            achieved = figures["flops_per_image"] * figures["batch_size"] / figures["step_s"] / 1e9
            assert figures["gflop_s"] == pytest.approx(achieved)
            assert figures["fraction_of_peak"] == pytest.approx(figures["gflop_s"] / figures["peak_gflop_s"])


@pytest.mark.slow
def test_store_fed_vgg16_counts_only_the_layers_after_conv5_1(results):
    row = results["models"]["vgg16_last2"]
    # conv5_2 or conv5_3 on its 2x2 map, as it runs: one (4 x 512) x (4 x 512) matrix product (SmallMapConv2d),
    # the padding's products left out (a convolution's count, 2 * 2 * 2 * 9 * 512 * 512, has them).
    conv5 = 2 * (4 * 512) * (4 * 512)
    fc6_folded, fc7, fc8 = 2 * 512 * 4096, 2 * 4096 * 4096, 2 * 4096 * 10
    # Frozen conv5_2, conv5_3 and fc6 forward only; fc7 forward and weight gradient; fc8 also its input's gradient.
    assert row["package_store_fed"]["flops_per_image"] == 2 * conv5 + fc6_folded + 2 * fc7 + 3 * fc8
    # The step's weights' floor (casts and optimizer over fc7 and fc8, nothing computed) is part of the step.
    assert 0 < row["package_store_fed"]["memory_floor_step_s"]
    # With the whole network, conv1_1 ... conv5_1 run forward too: (side of the map, in, out channels) at 32x32.
    convolutions = [(32, 3, 64), (32, 64, 64), (16, 64, 128), (16, 128, 128), (8, 128, 256), (8, 256, 256)]
    convolutions += [(8, 256, 256), (4, 256, 512), (4, 512, 512), (4, 512, 512)]
    frozen = sum(2 * side * side * 9 * inputs * outputs for side, inputs, outputs in convolutions) + conv5  # conv5_1
    assert row["package"]["flops_per_image"] == frozen + row["package_store_fed"]["flops_per_image"]


@pytest.mark.slow
def test_training_table_shows_flop_rates_whole_when_piped(results):
    text = text_of_tables(results)
    assert all(column in text for column in ("GFLOP/s", "% of peak", "study GFLOP/s", "study % of peak", "matmul peak"))
    assert "…" not in text


def test_the_evaluate_arm_times_evaluates_own_inference_over_every_training_and_test_image(tmp_path, monkeypatch):
    write_binary_version(tmp_path)
    cli = harness.package_cli(
        "mlp", CONFIGS, ["--data.data_dir", str(tmp_path), "--data.download", "false", "--data.val_size", "20"]
    )
    seen = []
    monkeypatch.setattr(
        harness,
        "logits_in_precision",
        lambda model, images, *rest: seen.append(len(images)) or logits_in_precision(model, images, *rest),
    )
    timed = harness.evaluate_everything(cli, batch_size=64)
    assert seen == [len(cli.datamodule.arrays.train_images), len(cli.datamodule.arrays.test_images)] == [200, 40]
    assert timed["images"] == 240 and timed["images_per_s"] > 0


def test_the_command_line_options_are_the_settings_fields_and_the_words_after_a_double_dash_go_to_every_run(
    monkeypatch,
):
    given = []
    monkeypatch.setattr("benchmarks.command.bench", given.append)
    main(["--models", "[cnn]", "--batch_sizes", "[64,256]", "--", "--trainer.precision", "32-true"])
    (settings,) = given
    assert settings == BenchSettings(
        models=("cnn",), batch_sizes=(64, 256), fit_args=["--trainer.precision", "32-true"]
    )


def test_a_bad_option_is_one_error_line_pointing_to_the_benchmarks_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--repeats", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        'error: Parser key "repeats": 0 does not conform to restriction v>0 (see python -m benchmarks --help)\n'
    )


def test_a_store_subset_is_an_official_copy_of_the_first_training_images(tiny_data, tmp_path):
    from cifar_bench.data.sources import load_cifar10

    whole = load_cifar10(tiny_data, download=False)
    copy = load_cifar10(harness.training_subset_copy(str(tiny_data), False, tmp_path / "subset", 10), download=False)
    assert len(copy.train_labels) == 10 and len(copy.test_labels) == 2
    # The first ten training images in order (two a batch), and as many test images as one of its batches holds.
    assert torch.equal(copy.train_images, whole.train_images[:10])
    assert torch.equal(copy.train_labels, whole.train_labels[:10])
    assert torch.equal(copy.test_images, whole.test_images[:2])
    assert copy.class_names == whole.class_names


def test_the_store_fed_arm_reads_the_store_in_every_epoch_even_of_a_config_ending_on_fresh_epochs(tiny_data, tmp_path):
    """vgg16_last5 runs its last 10 epochs through the whole network: the arm's one-epoch fit would be one of them."""
    settings = BenchSettings(data_dir=str(tiny_data), feature_store=str(tmp_path / "stores"))
    extra = ["--data.data_dir", str(tiny_data), "--data.download", "false", "--data.val_size", "20"]
    cli = harness.package_cli(
        "vgg16_last5", CONFIGS, [*extra, "--model.init_args.weights", "none", *store_overrides(settings)]
    )
    assert cli.model.hparams.feature_store == settings.feature_store and cli.model.hparams.fresh_epochs == 0


def test_the_package_arm_fits_with_the_configs_own_callbacks_and_leaves_no_checkpoint_behind(
    tiny_data, tmp_path, monkeypatch
):
    """Its steps pay for the hooks a user's fit runs between steps; left out: what only prints, and the SIGTERM
    saver (a bench is not resumed)."""
    monkeypatch.chdir(tmp_path)
    extra = ["--data.data_dir", str(tiny_data), "--data.download", "false", "--data.val_size", "20"]
    cli = harness.package_cli("mlp", CONFIGS, [*extra, "--data.batch_size", "16", "--trainer.accelerator", "cpu"])
    figures = harness.package_train(cli, steps=2, warmup=1)
    assert figures["step_s"] > 0
    trainer = cli.model.trainer
    names = {type(callback).__name__ for callback in trainer.callbacks}
    assert {"ModelCheckpoint", "StopOnNonFiniteLoss", "RestoreRandomState", "FeatureStoreFeeder"} <= names
    assert not names & {"ProgressBar", "RichModelSummary", "RunSummary", "SaveOnSigterm"}
    saved = [Path(callback.best_model_path) for callback in trainer.checkpoint_callbacks if callback.best_model_path]
    assert [path.name for path in saved] == ["last.ckpt"]  # saved after the timed steps, into a folder now gone
    assert not Path(trainer.default_root_dir).exists() and list(tmp_path.iterdir()) == []


def test_the_package_arm_without_callbacks_fits_with_the_step_timer_alone(tiny_data, tmp_path, monkeypatch):
    """What parts the config's callbacks from Lightning's own loop in the time the package adds to a plain loop."""
    monkeypatch.chdir(tmp_path)
    extra = ["--data.data_dir", str(tiny_data), "--data.download", "false", "--data.val_size", "20"]
    cli = harness.package_cli("mlp", CONFIGS, [*extra, "--data.batch_size", "16", "--trainer.accelerator", "cpu"])
    assert harness.package_train(cli, steps=2, warmup=1, with_callbacks=False)["step_s"] > 0
    assert [type(callback).__name__ for callback in cli.model.trainer.callbacks] == ["StepTimer"]


@pytest.mark.slow
def test_the_time_added_to_a_plain_loop_is_parted_into_the_callbacks_and_lightnings_loop(results):
    row = results["models"]["mlp"]
    package, bare = row["package"]["step_s"], row["package_no_callbacks"]["step_s"]
    assert bare > 0 and row["callbacks_overhead"] == pytest.approx(1 - bare / package)
    assert "of it, callbacks" in text_of_tables(results)
    assert "package_no_callbacks" not in results["models"]["vgg16_last2"], "a VGG16 row has no plain loop to part"


def text_of_tables(results: dict) -> str:
    console = Console(file=io.StringIO(), width=80)
    print_tables(results, console)
    return console.file.getvalue()


def test_bench_json_names_each_path_by_its_place_or_name_also_as_an_options_value(tmp_path):
    from benchmarks.command import without_machine_paths

    here = tmp_path / "checkout"
    given = {
        "settings": {"data_dir": str(here / "data"), "weights": str(tmp_path / "a=b" / "w.pth"), "download": False},
        "extra_args": [
            f"--model.init_args.weights={tmp_path / 'a=b' / 'w.pth'}",
            "--config=c.yaml",
            "--data.val_size",
            "20",
        ],
        "machine": {"cpu": "Intel(R) Xeon(R) Processor"},
    }
    assert without_machine_paths(given, here) == {
        "settings": {"data_dir": "data", "weights": "w.pth", "download": False},
        "extra_args": ["--model.init_args.weights=w.pth", "--config=c.yaml", "--data.val_size", "20"],
        "machine": {"cpu": "Intel(R) Xeon(R) Processor"},
    }
