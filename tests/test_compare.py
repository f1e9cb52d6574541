"""`cifar-bench study` and `compare`: seeds aggregated, failures reported, a measured random baseline."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import CONFIGS, tiny_batches, write_python_version

from cifar_bench.cli import main
from cifar_bench.data import load_cifar10
from cifar_bench.errors import CifarBenchError
from cifar_bench.reports.compare import RANDOM_MODEL, compare, random_accuracy
from cifar_bench.reports.reference import STUDY_RESULTS
from cifar_bench.reports.study import study

TINY_FIT = ["--trainer.max_epochs", "1", "--data.val_size", "20", "--data.eval_batch_size", "64", "--data.download", "false"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_python_version(root)
    return root


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> Path:
    """The real base and mlp configs, plus 'broken': a model config whose training cannot start."""
    folder = tmp_path_factory.mktemp("configs")
    for name in ("base.yaml", "mlp.yaml"):
        shutil.copy(CONFIGS / name, folder / name)
    broken = {"model": {"class_path": "cifar_bench.models.NoSuchClassifier"}, "trainer": {"logger": {"init_args": {"name": "broken"}}}}
    (folder / "broken.yaml").write_text(yaml.safe_dump(broken))
    return folder


@pytest.fixture(scope="module")
def studied(tmp_path_factory, tiny_data, configs) -> dict:
    """The study over mlp and broken with two seeds, one epoch each on the tiny copy."""
    logs, results = tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("results")
    rows = study(["broken", "mlp"], [0, 1], configs, logs, str(tiny_data), results=str(results), fit_args=TINY_FIT)
    return {"logs": logs, "results": results, "rows": {row["model"]: row for row in rows}}


# --- compare on hand-written metrics.json files -------------------------------------------------------


def write_metrics(folder: Path, model: str, seed: int, test: float, train: float, data_dir: Path) -> None:
    """What evaluate writes into <run>/evaluation/metrics.json, reduced to what compare reads."""
    metrics = {
        "model": model,
        "seed": seed,
        "data_dir": str(data_dir),
        "splits": {"test": {"accuracy": test}, "train": {"accuracy": train}},
        "weight_layers": 3,
        "epochs_trained": 18,
        "trainable_params": 1000,
        "total_params": 1200,
        "training_time_s": 60.0 + seed,
    }
    path = folder / model / f"seed{seed}" / "evaluation" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(metrics))


@pytest.fixture
def hand_written(tmp_path, tiny_data) -> dict:
    """Two seeds of mlp, one of a model the study did not train; compare's rows by model."""
    write_metrics(tmp_path, "mlp", 0, test=0.50, train=0.60, data_dir=tiny_data)
    write_metrics(tmp_path, "mlp", 1, test=0.56, train=0.70, data_dir=tiny_data)
    write_metrics(tmp_path, "resnet", 0, test=0.90, train=0.95, data_dir=tiny_data)
    return {row["model"]: row for row in compare(str(tmp_path), out=str(tmp_path / "out"))}


def test_two_seeds_of_one_model_give_their_exact_mean_and_sample_std(hand_written):
    row = hand_written["mlp"]
    assert (row["runs"], row["failed"]) == (2, 0)
    assert row["test_accuracy_mean"] == pytest.approx(0.53, abs=1e-12)
    assert row["test_accuracy_std"] == pytest.approx(0.06 / 2**0.5, abs=1e-12) and row["test_accuracy_std"] > 0
    assert row["train_accuracy_mean"] == pytest.approx(0.65, abs=1e-12)
    assert row["train_accuracy_std"] == pytest.approx(0.10 / 2**0.5, abs=1e-12)
    assert (row["training_time_s_mean"], row["trainable_params"], row["total_params"]) == (60.5, 1000, 1200)


def test_the_study_column_and_the_difference_to_it(hand_written):
    study_mlp = STUDY_RESULTS["mlp"][0]
    assert hand_written["mlp"]["study_test_accuracy"] == study_mlp
    assert hand_written["mlp"]["difference_to_study"] == pytest.approx(0.53 - study_mlp, abs=1e-12)
    assert hand_written["resnet"]["study_test_accuracy"] is None and "difference_to_study" not in hand_written["resnet"]
    assert hand_written[RANDOM_MODEL]["study_test_accuracy"] == 0.1


def test_the_random_row_is_seeded_uniform_guessing_on_the_labels(hand_written):
    def guessed_right(labels: np.ndarray) -> float:
        labels = torch.from_numpy(labels).long()
        guesses = torch.randint(0, 10, labels.shape, generator=torch.Generator().manual_seed(0))
        return (guesses == labels).double().mean().item()

    batches = tiny_batches()  # what tiny_data holds: five training batches, then the test batch
    row = hand_written[RANDOM_MODEL]
    assert row["test_accuracy_mean"] == pytest.approx(guessed_right(batches[-1][1]), abs=1e-6)
    assert row["train_accuracy_mean"] == pytest.approx(guessed_right(np.concatenate([labels for _, labels in batches[:-1]])), abs=1e-6)


# --- the study: real trainings -------------------------------------------------------------------------


def evaluated_runs(logs: Path, model: str) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((logs / model).glob("seed*/evaluation/metrics.json"))]


@pytest.mark.slow
def test_study_trains_and_evaluates_each_model_once_per_seed(studied):
    runs = evaluated_runs(studied["logs"], "mlp")
    assert sorted(run["seed"] for run in runs) == [0, 1]
    assert all(run["epochs_trained"] == 1 for run in runs)


@pytest.mark.slow
def test_runs_of_one_model_become_one_row_with_mean_std_and_count(studied):
    runs = evaluated_runs(studied["logs"], "mlp")
    row = studied["rows"]["mlp"]
    assert (row["runs"], row["failed"]) == (2, 0)
    for split in ("test", "train"):
        accuracies = np.array([run["splits"][split]["accuracy"] for run in runs])
        assert row[f"{split}_accuracy_mean"] == pytest.approx(accuracies.mean())
        assert row[f"{split}_accuracy_std"] == pytest.approx(accuracies.std(ddof=1))
    assert (row["weight_layers"], row["epochs_trained"], row["trainable_params"]) == (3, 1, runs[0]["trainable_params"])
    markdown = (studied["logs"] / "comparison.md").read_text()
    mlp_line = next(line for line in markdown.splitlines() if line.startswith("| mlp |"))
    assert f"{row['test_accuracy_mean']:.4f} ± {row['test_accuracy_std']:.4f}" in mlp_line
    assert "| mlp | 2 |" in mlp_line


def test_each_seed_draws_its_own_validation_split_and_batch_order(studied):
    configs = [yaml.safe_load((studied["logs"] / "mlp" / f"seed{seed}" / "config.yaml").read_text()) for seed in (0, 1)]
    assert [(config["seed_everything"], config["data"]["seed"]) for config in configs] == [(0, 0), (1, 1)]


def test_the_evidence_of_each_run_is_copied_without_checkpoints(studied):
    results = studied["results"]
    for seed in (0, 1):
        run = results / "mlp" / f"seed{seed}"
        for name in ("config.yaml", "environment.json", "evaluation/metrics.json", "evaluation/summary.txt", "evaluation/curves.png"):
            assert (run / name).is_file(), name
        environment = json.loads((run / "environment.json").read_text())
        assert environment["wall_s"] > 0 and environment["machine"]["cores"] and "torch" in environment["machine"]
    assert (results / "comparison.md").read_text() == (studied["logs"] / "comparison.md").read_text()
    assert not list(results.rglob("*.ckpt"))


@pytest.mark.slow
def test_a_model_that_fails_to_train_is_listed_as_failed_without_stopping_the_others(studied):
    row = studied["rows"]["broken"]
    assert (row["runs"], row["failed"]) == (0, 2)
    markers = sorted((studied["logs"] / "broken").glob("failed-seed*.json"))
    assert [json.loads(path.read_text())["stage"] for path in markers] == ["fit", "fit"]
    markdown = (studied["logs"] / "comparison.md").read_text()
    assert "| broken | 0 (2 failed) | failed | - | - | failed |" in markdown  # no study number for it either
    assert studied["rows"]["mlp"]["runs"] == 2  # trained after broken failed


@pytest.mark.slow
def test_random_classifier_row_is_measured_on_the_real_labels(studied, tiny_data):
    row = studied["rows"][RANDOM_MODEL]
    arrays = load_cifar10(tiny_data, download=False)
    assert row["test_accuracy_mean"] == random_accuracy(arrays.test_labels)
    assert row["train_accuracy_mean"] == random_accuracy(arrays.train_labels)
    assert (row["weight_layers"], row["epochs_trained"]) == (0, 0)


def test_random_guessing_is_reproducible_and_near_one_in_ten():
    labels = torch.arange(20_000) % 10
    accuracy = random_accuracy(labels)
    assert accuracy == random_accuracy(labels)
    assert 0.09 < accuracy < 0.11


@pytest.mark.slow
def test_comparison_csv_holds_every_row_with_numbers(studied):
    with open(studied["logs"] / "comparison.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert list(rows) == [RANDOM_MODEL, "broken", "mlp"]
    assert float(rows["mlp"]["test_accuracy_mean"]) == pytest.approx(studied["rows"]["mlp"]["test_accuracy_mean"])
    assert float(rows["mlp"]["test_accuracy_std"]) == pytest.approx(studied["rows"]["mlp"]["test_accuracy_std"])
    assert (rows["mlp"]["runs"], rows["broken"]["failed"], rows["broken"]["test_accuracy_mean"]) == ("2", "2", "")


def test_compare_needs_the_data_for_the_random_row_and_says_so(tmp_path, tiny_data):
    write_metrics(tmp_path, "mlp", 0, test=0.5, train=0.6, data_dir=tiny_data)
    with pytest.raises(CifarBenchError, match="Random classifier row needs the CIFAR-10 labels"):
        compare(str(tmp_path), data_dir=str(tmp_path / "mlp"), out=str(tmp_path))


def test_compare_on_a_folder_without_evaluated_runs_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(tmp_path)])
    assert exit_info.value.code == 2
    error_output = capsys.readouterr().err.strip().splitlines()
    assert len(error_output) == 1 and error_output[0].startswith("error: no evaluated runs under")


def test_study_refuses_an_unknown_model_before_training_anything(configs, tmp_path):
    with pytest.raises(CifarBenchError, match="unknown model resnet"):
        study(["mlp", "resnet"], [0], configs, tmp_path)
    assert not list(tmp_path.iterdir())
