"""`cifar-bench bench` on a tiny dataset: every figure is there and the ratios follow from them (no timing asserted)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from conftest import tiny_batches, write_binary_version
from rich.console import Console

from cifar_bench.bench import bench, parser
from cifar_bench.cli import main

pytestmark = pytest.mark.slow  # real timed trainings of every model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Small batches, so that the tiny training split holds every timed step of the package.
PACKAGE_ARGS = ["--data.val_size", "200", "--data.batch_size", "16", "--data.eval_batch_size", "100", "--trainer.accelerator", "cpu"]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bench")
    write_binary_version(root, tiny_batches(per_batch=200))  # 1,000 training images, 200 test images
    argv = [
        *("--models", "mlp", "vgg16_last2", "--sweep_models", "mlp"),
        *("--data_dir", str(root), "--no-download", "--config_dir", str(CONFIGS), "--out", str(root / "out")),
        *("--repeats", "1", "--steps", "2", "--warmup", "1", "--eval_images", "100", "--vgg_eval_images", "100"),
        *("--vgg_steps", "1", "--vgg_warmup", "1"),
        *("--cache_steps", "2", "--cache_val_size", "20", "--batch_sizes", "16,32", "--threads", "1", "--levers"),
        *("--accuracy_check", "--accuracy_model", "mlp", "--accuracy_images", "64", "--accuracy_epochs", "1"),
    ]
    written = bench(parser().parse_args(argv), PACKAGE_ARGS, Console(file=io.StringIO()))
    assert json.loads((root / "out" / "bench.json").read_text()) == json.loads(json.dumps(written))
    return written


def test_bench_records_the_machine_and_the_settings(results):
    assert {"cpu", "cores", "torch_threads", "torch", "lightning"} <= set(results["machine"])
    assert results["settings"]["repeats"] == 1
    assert "--data.batch_size" in results["extra_args"]


def test_each_model_has_package_and_baseline_speeds_for_training_and_evaluation(results):
    for name, row in results["models"].items():
        for figures in (row["package"], row["baseline"], row["eval"]["package"], row["eval"]["baseline"]):
            assert figures["images_per_s"] > 0
            assert figures["epoch_s"] > 0
            assert len(figures["repeats_step_s"]) == 1
        assert row["package"]["batch_size"] == 16
        assert row["baseline"]["batch_size"] == 64  # the study's loop, whatever the package uses
        assert row["epoch_images"] == 800


def test_ratios_are_package_over_baseline_speed(results):
    row = results["models"]["mlp"]
    ratios = row["ratios"]
    assert ratios["train_images_per_s"] == pytest.approx(row["package"]["images_per_s"] / row["baseline"]["images_per_s"])
    assert ratios["epoch"] == pytest.approx(row["baseline"]["epoch_s"] / row["package"]["epoch_s"])
    assert ratios["eval_images_per_s"] == pytest.approx(row["eval"]["package"]["images_per_s"] / row["eval"]["baseline"]["images_per_s"])
    assert row["lightning_overhead"] == pytest.approx(1 - row["plain_fast_loop"]["step_s"] / row["package"]["step_s"])


def test_vgg16_is_timed_with_and_without_the_feature_cache_and_the_cache_build_is_extrapolated(results):
    row = results["models"]["vgg16_last2"]
    assert row["ratios"]["cached_vs_uncached_epoch"] == pytest.approx(row["package"]["epoch_s"] / row["package_cached"]["epoch_s"])
    cache = row["cache"]
    assert cache["images_encoded"] == 2 * (1 + 2) * 64 + 20  # every training image and its mirror, and the validation images
    assert cache["full_build_images"] == 2 * 800 + 200
    assert cache["full_build_s_estimated"] == pytest.approx(cache["build_s"] * cache["full_build_images"] / cache["images_encoded"])


def test_levers_time_vgg16_without_the_fc6_fold_beside_the_shipped_config(results):
    levers = results["models"]["vgg16_last2"]["levers"]
    assert set(levers) == {"fc6 unfolded", "fc6 unfolded, cached"}
    assert all(figures["images_per_s"] > 0 for figures in levers.values())


def test_sweeps_cover_each_batch_size_and_thread_count(results):
    points = {(row["batch_size"], row["threads"]) for row in results["sweeps"]}
    assert {(16, 1)} | {(size, results["machine"]["torch_threads"]) for size in (16, 32)} <= points
    for row in results["sweeps"]:
        assert row["epoch_s"] == pytest.approx(math.ceil(800 / row["batch_size"]) * row["step_s"])


def test_accuracy_check_reports_fp32_and_bf16_test_accuracy(results):
    check = results["accuracy_check"]
    assert 0 <= check["32-true"]["test_acc"] <= 1 and 0 <= check["bf16-mixed"]["test_acc"] <= 1
    assert check["difference"] == pytest.approx(check["bf16-mixed"]["test_acc"] - check["32-true"]["test_acc"])


def test_targets_name_only_what_was_measured(results):
    names = {target["target"] for target in results["targets"]}
    assert names == {"mlp epoch vs baseline", "vgg16_last2 cached vs uncached epoch"}


def test_an_unknown_model_is_a_user_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--models", "resnet", "--config_dir", str(CONFIGS)])
    assert exit_info.value.code == 2
    assert "no config for resnet" in capsys.readouterr().err
