"""`cifar-bench study` and `compare`: seeds aggregated, failures reported, a measured random baseline."""

from __future__ import annotations

import csv
import html
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import CONFIGS, github_rendered
from rich.console import Console

from cifar_bench.cli import main
from cifar_bench.data import load_cifar10
from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.compare import (
    HEADINGS,
    RANDOM_MODEL,
    compare,
    markdown_table,
    model_row,
    random_row,
)
from cifar_bench.evaluation.paired import mcnemar_p_text
from cifar_bench.evaluation.reference import study_accuracy
from cifar_bench.evaluation.statistics import mcnemar_exact_p, t_interval, wilson_interval
from cifar_bench.report.command import report
from cifar_bench.run_folder import RunFolder
from cifar_bench.study import study

TINY_FIT = [
    "--trainer.max_epochs",
    "1",
    "--data.val_size",
    "20",
    "--data.eval_batch_size",
    "64",
    "--data.download",
    "false",
]


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> Path:
    """The real base and mlp configs, plus 'broken': a model config whose training cannot start."""
    folder = tmp_path_factory.mktemp("configs")
    for name in ("base.yaml", "mlp.yaml"):
        shutil.copy(CONFIGS / name, folder / name)
    broken = {
        "model": {"class_path": "cifar_bench.models.NoSuchClassifier"},
        "trainer": {"logger": {"init_args": {"name": "broken"}}},
    }
    (folder / "broken.yaml").write_text(yaml.safe_dump(broken))
    return folder


@pytest.fixture(scope="module")
def studied(tmp_path_factory, tiny_data, configs) -> dict:
    """The study over mlp and broken with two seeds, one epoch each on the tiny copy: a Python process per
    training and evaluation, so every test using it is marked slow."""
    logs, results = tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("results")
    rows = study(["broken", "mlp"], [0, 1], configs, logs, str(tiny_data), results=str(results), fit_args=TINY_FIT)
    return {"logs": logs, "results": results, "rows": {row["model"]: row for row in rows}, "data_dir": tiny_data}


# --- compare on hand-written metrics.json files -------------------------------------------------------


def write_metrics(folder: Path, model: str, seed: int, test: float, train: float, data_dir: Path) -> None:
    """What evaluate writes into <run>/evaluation/metrics.json, reduced to what compare reads."""
    metrics = {
        "model": model,
        "seed": seed,
        "data_dir": str(data_dir),
        "splits": {
            "test": {"accuracy": test, "correct": round(test * 1000), "images": 1000},
            "train": {"accuracy": train, "correct": round(train * 5000), "images": 5000},
        },
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


def test_evidence_kept_beside_the_table_is_left_out_unless_asked_for_and_makes_a_table_of_its_own(tmp_path, tiny_data):
    write_metrics(tmp_path, "mlp", 0, test=0.50, train=0.60, data_dir=tiny_data)
    write_metrics(tmp_path / "superseded" / "old_recipe", "mlp", 0, test=0.40, train=0.50, data_dir=tiny_data)
    write_metrics(tmp_path / "store_probes", "mlp", 1, test=0.30, train=0.50, data_dir=tiny_data)
    write_metrics(tmp_path / "mlp_60_epochs_beside", "mlp", 3, test=0.20, train=0.50, data_dir=tiny_data)
    write_metrics(tmp_path / "study" / "machine1", "mlp", 2, test=0.60, train=0.70, data_dir=tiny_data)
    quiet = Console(file=io.StringIO())
    (table,) = [row for row in compare(str(tmp_path), console=quiet) if row["model"] == "mlp"]
    assert (table["runs"], table["test_accuracy_mean"]) == (2, pytest.approx(0.55))  # any depth, but not set aside
    (everything,) = [row for row in compare(str(tmp_path), set_aside=[], console=quiet) if row["model"] == "mlp"]
    assert everything["runs"] == 5
    beside = tmp_path / "mlp_60_epochs_beside"
    (own,) = [row for row in compare(str(beside), console=quiet) if row["model"] == "mlp"]
    assert (own["runs"], own["test_accuracy_mean"]) == (1, pytest.approx(0.20))


def test_the_table_states_its_total_training_time_with_one_run_per_model(tmp_path, hand_written):
    markdown = (tmp_path / "out" / "comparison.md").read_text()
    # mlp's two seeds average 60.5 s and resnet's one run took 60 s: 120.5 s, shown rounded.
    assert "Training time of the table, one run per model: 2m 00s (2 models)" in markdown


def test_rows_that_read_one_feature_store_count_its_build_once_each_row_shown_with_its_share(tmp_path, tiny_data):
    # vgg16_last2 built the store (600 s of its 900 s); last3 opened it (5 s of 305 s); the MLP reads none.
    runs = {"vgg16_last2": (900.0, 600.0), "vgg16_last3": (305.0, 5.0), "mlp": (60.0, 0.0)}
    for model, (time, spent) in runs.items():
        write_metrics(tmp_path, model, 0, test=0.7, train=0.8, data_dir=tiny_data)
        path = tmp_path / model / "seed0" / "evaluation" / "metrics.json"
        store = {"digest": "ab12", "views": 8, "build_s": 600.0} if model != "mlp" else None
        metrics = json.loads(path.read_text()) | {
            "training_time_s": time,
            "feature_store_s": spent,
            "feature_store": store,
        }
        path.write_text(json.dumps(metrics))
    rows = {
        row["model"]: row
        for row in compare(str(tmp_path), out=str(tmp_path / "out"), console=Console(file=io.StringIO()))
    }
    assert [rows[m]["training_time_s_mean"] for m in runs] == [300.0, 300.0, 60.0]  # without the store
    assert [rows[m].get("feature_store_share_s") for m in runs] == [300.0, 300.0, None]
    markdown = (tmp_path / "out" / "comparison.md").read_text()
    assert "| 5m 00s + 5m 00s (1/2 of the store's build) |" in markdown
    # 300 + 300 + 60 s of training and the store's 600 s once: 21m 00s
    assert (
        "Training time of the table, one run per model: 21m 00s (3 models), of which the 8-view feature store's "
        "build, once: 10m 00s (read by vgg16\\_last2, vgg16\\_last3)" in markdown
    )
    report(str(tmp_path), data_dir=str(tmp_path / "no_data"), console=Console(file=io.StringIO()))
    assert "5m 00s + 5m 00s (1/2 of the store's build)" in (tmp_path / "report.md").read_text()  # its table too
    table = list(csv.DictReader(io.StringIO((tmp_path / "out" / "comparison.csv").read_text())))
    assert [(r["feature_store_build_s"], r["feature_store_share_s"]) for r in table if r["model"] == "vgg16_last3"] == [
        ("600.0", "300.0")
    ]


def test_a_store_record_that_is_not_one_is_refused_by_name(tmp_path, tiny_data, capsys):
    write_metrics(tmp_path, "vgg16_last3", 0, test=0.7, train=0.8, data_dir=tiny_data)
    path = tmp_path / "vgg16_last3" / "seed0" / "evaluation" / "metrics.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"feature_store": {"digest": "../x", "views": 8}}))
    with pytest.raises(SystemExit) as exit:
        main(["compare", str(tmp_path)])
    assert exit.value.code == 2
    assert "(feature_store: digest '../x' is not a hexadecimal digest): run evaluate again" in capsys.readouterr().err


def test_piped_output_names_where_the_tables_went_on_one_unwrapped_line(tmp_path, tiny_data):
    write_metrics(tmp_path, "mlp", 0, test=0.50, train=0.60, data_dir=tiny_data)
    out = tmp_path / ("a_long_results_folder_name_" * 3) / "[red]"
    piped = Console(width=80, file=io.StringIO(), force_terminal=False)
    compare(str(tmp_path), out=str(out), console=piped)
    assert f"Written to {out / 'comparison.md'} and {out / 'comparison.csv'}\n" in piped.file.getvalue()


@pytest.mark.slow
def test_a_failed_model_is_named_as_written_even_when_its_name_looks_like_markup(configs, tiny_data, tmp_path):
    marked_up = shutil.copytree(configs, tmp_path / "configs")
    shutil.move(marked_up / "broken.yaml", marked_up / "[b]broken.yaml")
    piped = Console(width=200, file=io.StringIO(), force_terminal=False)
    study(["[b]broken"], [0], marked_up, tmp_path / "logs", str(tiny_data), fit_args=TINY_FIT, console=piped)
    output = piped.file.getvalue()
    assert " [b]broken, seed 0 " in output  # the rule above its run
    assert "[b]broken (seed 0) failed in fit with exit status 2\n" in output
    assert "│ [b]broken " in output  # its row of the table


def test_a_model_named_like_markdown_gets_one_plain_row_in_comparison_md():
    hostile = "evil|forged cell\n| forged row | [link](https://evil.example) www.evil.example a@evil.example"
    rows = [random_row(1000), model_row(hostile, [], [{"seed": 0}])]
    page = github_rendered(markdown_table(rows))
    assert [tag for tag, _ in page.tags].count("tr") == 1 + len(rows)
    assert not [attributes for _, attributes in page.tags if attributes]  # no link, no image
    assert page.texts[len(HEADINGS) + len(HEADINGS)] == hostile.replace("\n", "\\n")


def test_the_study_column_and_the_difference_to_it(hand_written):
    study_mlp = study_accuracy("mlp")  # exact, from its per-class counts: 0.5053
    assert hand_written["mlp"]["study_test_accuracy"] == study_mlp
    assert hand_written["mlp"]["difference_to_study"] == pytest.approx(0.53 - study_mlp, abs=1e-12)
    assert hand_written["resnet"]["study_test_accuracy"] is None and "difference_to_study" not in hand_written["resnet"]
    assert hand_written[RANDOM_MODEL]["study_test_accuracy"] == 0.1


def test_one_run_gets_a_wilson_interval_on_its_test_images_and_several_a_t_interval(hand_written):
    assert hand_written["resnet"]["test_accuracy_ci_method"] == "wilson"
    assert (
        hand_written["resnet"]["test_accuracy_ci_low"],
        hand_written["resnet"]["test_accuracy_ci_high"],
    ) == pytest.approx(wilson_interval(900, 1000))
    assert hand_written["mlp"]["test_accuracy_ci_method"] == "t (2 runs)"
    assert (hand_written["mlp"]["test_accuracy_ci_low"], hand_written["mlp"]["test_accuracy_ci_high"]) == pytest.approx(
        t_interval([0.50, 0.56])
    )


@pytest.mark.parametrize(
    "accuracies, verdict",
    [((0.55, 0.56, 0.57), "clear"), ((0.49, 0.50, 0.52), "tied"), ((0.40, 0.41, 0.42), "below")],
)
def test_each_row_says_whether_the_studys_figure_is_clear_of_its_interval(tmp_path, tiny_data, accuracies, verdict):
    for seed, accuracy in enumerate(accuracies):
        write_metrics(tmp_path, "mlp", seed, test=accuracy, train=0.6, data_dir=tiny_data)
    (row,) = [row for row in compare(str(tmp_path), out=str(tmp_path / "out")) if row["model"] == "mlp"]
    assert (row["test_accuracy_ci_low"] > study_accuracy("mlp")) == (verdict == "clear")
    assert row["versus_study"] == verdict
    assert f"| {verdict} |" in (tmp_path / "out" / "comparison.md").read_text()


def test_a_single_runs_interval_is_marked_as_the_wilson_interval_of_one_run(hand_written, tmp_path):
    markdown = (tmp_path / "out" / "comparison.md").read_text()
    (resnet,) = [line for line in markdown.splitlines() if line.startswith("| resnet |")]
    (mlp,) = [line for line in markdown.splitlines() if line.startswith("| mlp |")]
    assert "(Wilson, 1 run)" in resnet and "Wilson" not in mlp


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


@pytest.mark.slow
def test_each_seed_draws_its_own_validation_split_and_batch_order(studied):
    configs = [yaml.safe_load((studied["logs"] / "mlp" / f"seed{seed}" / "config.yaml").read_text()) for seed in (0, 1)]
    assert [(config["seed_everything"], config["data"]["seed"]) for config in configs] == [(0, 0), (1, 1)]


@pytest.mark.slow
def test_the_evidence_of_each_run_is_copied_without_checkpoints(studied):
    results = studied["results"]
    for seed in (0, 1):
        run = results / "mlp" / f"seed{seed}"
        for name in (
            "config.yaml",
            "environment.json",
            "evaluation/metrics.json",
            "evaluation/summary.txt",
            "evaluation/curves.png",
            "evaluation/predictions.npz",
        ):
            assert (run / name).is_file(), name
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["data"]["data_dir"] == studied["data_dir"].name  # outside the current folder: by its name
        environment = json.loads((run / "environment.json").read_text())
        assert environment["wall_s"] > 0 and environment["machine"]["cores"] and "torch" in environment["machine"]
    assert (results / "comparison.md").read_text() == (studied["logs"] / "comparison.md").read_text()
    assert not list(results.rglob("*.ckpt"))
    for folder in (results, studied["logs"]):  # the study ends with its report, in both folders
        page = html.unescape((folder / "report.html").read_text())
        assert "The study's conclusions, checked" in page and (folder / "report.md").is_file()
    assert "broken" in html.unescape((studied["logs"] / "report.html").read_text())  # its failure, in the table


@pytest.mark.slow
def test_a_pair_is_compared_from_the_copied_evidence_alone_with_no_data_and_no_checkpoint(studied, tmp_path):
    results = shutil.copytree(studied["results"], tmp_path / "results")
    (results / "other").mkdir()
    shutil.copytree(results / "mlp" / "seed1", results / "other" / "seed0")
    metrics_file = results / "other" / "seed0" / "evaluation" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics_file.write_text(json.dumps({**metrics, "model": "other", "data_dir": str(tmp_path / "nowhere")}))
    compare(str(results), pair=["mlp", "other"], console=Console(width=200))
    result = json.loads((results / "comparison_pair.json").read_text())
    assert result["images"] == len(np.load(results / "mlp" / "seed0" / "evaluation" / "predictions.npz")["test_labels"])
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.slow
def test_a_model_that_fails_to_train_is_listed_as_failed_without_stopping_the_others(studied):
    row = studied["rows"]["broken"]
    assert (row["runs"], row["failed"]) == (0, 2)
    markers = sorted((studied["logs"] / "broken").glob("failed-seed*.json"))
    assert [json.loads(path.read_text())["stage"] for path in markers] == ["fit", "fit"]
    markdown = (studied["logs"] / "comparison.md").read_text()
    assert "| broken | 0 (2 failed) | failed | - | - | - | - | failed |" in markdown
    assert studied["rows"]["mlp"]["runs"] == 2  # trained after broken failed


def test_a_rerun_that_finds_a_run_evaluated_drops_the_failure_an_earlier_attempt_left(configs, tiny_data, tmp_path):
    write_metrics(tmp_path, "mlp", 0, test=0.50, train=0.60, data_dir=tiny_data)
    marker = RunFolder.in_study(tmp_path, "mlp", 0).failure_marker
    marker.write_text("{}")
    rows = study(["mlp"], [0], configs, tmp_path, str(tiny_data), console=Console(file=io.StringIO()))
    assert not marker.exists()
    assert [(row["runs"], row["failed"]) for row in rows if row["model"] == "mlp"] == [(1, 0)]


def test_a_study_folder_given_under_home_is_found_there(configs, tiny_data, tmp_path, monkeypatch):
    """``~`` reaches study unexpanded from a Makefile's quoted value or a zsh/sh argument."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    write_metrics(tmp_path / "runs", "mlp", 0, test=0.50, train=0.60, data_dir=tiny_data)
    console = Console(file=io.StringIO())
    study(["mlp"], [0], configs, "~/runs", str(tiny_data), console=console)
    assert "already trained and evaluated" in console.file.getvalue(), "the evaluated run was found, not retrained"
    assert not (tmp_path / "elsewhere" / "~").exists()


def test_a_folder_where_a_failure_marker_goes_is_one_error_and_stays(configs, tiny_data, tmp_path):
    write_metrics(tmp_path, "mlp", 0, test=0.50, train=0.60, data_dir=tiny_data)
    marker = RunFolder.in_study(tmp_path, "mlp", 0).failure_marker
    marker.mkdir()
    (marker / "kept").write_text("kept\n")
    with pytest.raises(CifarBenchError, match=r"cannot remove .*failed-seed0.json \(Is a directory\)"):
        study(["mlp"], [0], configs, tmp_path, str(tiny_data), console=Console(file=io.StringIO()))
    assert (marker / "kept").read_text() == "kept\n"


@pytest.mark.slow
def test_random_classifier_row_is_its_expected_accuracy_with_a_binomial_interval_on_the_test_images(studied, tiny_data):
    row = studied["rows"][RANDOM_MODEL]
    images = len(load_cifar10(tiny_data, download=False).test_labels)
    assert row["test_accuracy_mean"] == row["train_accuracy_mean"] == 0.1
    assert (row["test_accuracy_ci_low"], row["test_accuracy_ci_high"]) == wilson_interval(round(images / 10), images)
    assert row["test_accuracy_ci_method"] == f"binomial ({images} images)"
    assert (row["weight_layers"], row["epochs_trained"]) == (0, 0)
    markdown = (studied["logs"] / "comparison.md").read_text()
    assert (
        f"| {RANDOM_MODEL} | 1 | 0.1000 | \\[{row['test_accuracy_ci_low']:.4f}, {row['test_accuracy_ci_high']:.4f}\\] "
        "(uniform guessing) |" in markdown
    )


@pytest.mark.slow
def test_several_seeds_get_a_t_interval_and_one_run_a_wilson_interval(studied, tmp_path):
    runs = evaluated_runs(studied["logs"], "mlp")
    row = studied["rows"]["mlp"]
    accuracies = np.array([run["splits"]["test"]["accuracy"] for run in runs])
    half = 12.7062047362 * accuracies.std(ddof=1) / np.sqrt(2)  # t_{0.975, 1}, to the digits the check needs
    assert row["test_accuracy_ci_low"] == pytest.approx(accuracies.mean() - half)
    assert row["test_accuracy_ci_high"] == pytest.approx(accuracies.mean() + half)
    assert row["test_accuracy_ci_method"] == "t (2 runs)"
    shutil.copytree(studied["logs"] / "mlp" / "seed0" / "evaluation", tmp_path / "mlp" / "seed0" / "evaluation")
    (single,) = [r for r in compare(str(tmp_path)) if r["model"] == "mlp"]
    test = runs[0]["splits"]["test"]
    assert (single["test_accuracy_ci_low"], single["test_accuracy_ci_high"]) == wilson_interval(
        test["correct"], test["images"]
    )
    with open(tmp_path / "comparison.csv", newline="") as handle:
        assert {"test_accuracy_ci_low", "test_accuracy_ci_high", "test_accuracy_ci_method"} <= set(
            next(csv.DictReader(handle))
        )


@pytest.mark.slow
def test_a_pair_of_models_is_compared_on_the_same_test_images_by_the_first_seed_both_have(studied, tmp_path):
    for seed in (0, 1):
        shutil.copytree(
            studied["logs"] / "mlp" / f"seed{seed}" / "evaluation", tmp_path / "mlp" / f"seed{seed}" / "evaluation"
        )
    other = tmp_path / "other" / "version_0" / "evaluation"
    shutil.copytree(studied["logs"] / "mlp" / "seed1" / "evaluation", other)
    metrics = json.loads((other / "metrics.json").read_text())
    (other / "metrics.json").write_text(json.dumps({**metrics, "model": "other"}))
    with np.load(other / "predictions.npz") as content:
        arrays = {key: content[key] for key in content.files}
    arrays["test_predictions"] = arrays["test_labels"].copy()  # 'other' is right everywhere
    np.savez_compressed(other / "predictions.npz", **arrays)
    compare(str(tmp_path), pair=["other", "mlp"], console=Console(width=200))
    result = json.loads((tmp_path / "comparison_pair.json").read_text())
    with np.load(tmp_path / "mlp" / "seed1" / "evaluation" / "predictions.npz") as content:  # 'other' is of seed 1
        wrong = int((content["test_predictions"] != content["test_labels"]).sum())
        images = len(content["test_labels"])
    assert (result["only_first_right"], result["only_second_right"], result["images"]) == (wrong, 0, images)
    assert result["difference"] == pytest.approx(wrong / images)
    assert result["mcnemar_p"] == pytest.approx(mcnemar_exact_p(wrong, 0))
    assert result["ci_low"] < result["difference"] < result["ci_high"]
    assert "the runs of seed 1, the first both have, compared" in result["note"] and result["across_seeds"] is None
    # Each run by its place in the folder compared, never a local path.
    assert (result["first_run"], result["second_run"]) == ("other/version_0", "mlp/seed1")
    assert "Paired comparison on the same" in (tmp_path / "comparison.md").read_text()
    with pytest.raises(CifarBenchError, match="no evaluated run here"):
        compare(str(tmp_path), pair=["mlp", "resnet"], console=Console(width=200))


def test_mcnemars_p_is_given_with_three_digits_and_one_too_small_for_a_double_as_a_bound_never_as_0():
    assert mcnemar_p_text(mcnemar_exact_p(708, 326)) == "McNemar exact p = 4.08e-33"
    assert mcnemar_exact_p(3345, 390) == 0.0  # below the smallest double: the exact sum underflows
    assert mcnemar_p_text(mcnemar_exact_p(3345, 390)) == "McNemar exact p < 1e-300"
    assert mcnemar_p_text(mcnemar_exact_p(0, 0)) == "McNemar exact p = 1"


def test_interval_arithmetic_against_textbook_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    low, high = t_interval([0.5, 0.7])
    assert (low, high) == (pytest.approx(0.6 - 12.706 * 0.1, abs=1e-4), pytest.approx(0.6 + 12.706 * 0.1, abs=1e-4))
    half = 2.776 * 0.1581139 / 5**0.5  # t_{0.975, 4} from the tables, times the standard error
    assert t_interval([0.5, 0.6, 0.7, 0.8, 0.9]) == (
        pytest.approx(0.7 - half, abs=1e-4),
        pytest.approx(0.7 + half, abs=1e-4),
    )
    assert t_interval([0.3, 0.3, 0.3]) == (0.3, 0.3)  # seeds that agree: no spread, and no NaN
    assert mcnemar_exact_p(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact_p(1, 9) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact_p(0, 0) == mcnemar_exact_p(7, 7) == 1.0


@pytest.mark.slow
def test_comparison_csv_holds_every_row_with_numbers(studied):
    with open(studied["logs"] / "comparison.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert list(rows) == [RANDOM_MODEL, "broken", "mlp"]
    assert float(rows["mlp"]["test_accuracy_mean"]) == pytest.approx(studied["rows"]["mlp"]["test_accuracy_mean"])
    assert float(rows["mlp"]["test_accuracy_std"]) == pytest.approx(studied["rows"]["mlp"]["test_accuracy_std"])
    assert (rows["mlp"]["runs"], rows["broken"]["failed"], rows["broken"]["test_accuracy_mean"]) == ("2", "2", "")


def test_compare_needs_no_data_the_random_row_counts_the_test_images_the_runs_were_evaluated_on(tmp_path, monkeypatch):
    """No data_dir anywhere, none in the metrics, and none in the working folder: the counts come from metrics.json."""
    monkeypatch.chdir(tmp_path)
    write_metrics(tmp_path, "mlp", 0, test=0.5, train=0.6, data_dir=tmp_path / "no_such_data")
    write_metrics(tmp_path, "cnn", 0, test=0.8, train=0.9, data_dir=tmp_path / "no_such_data")
    for path in tmp_path.rglob("metrics.json"):
        metrics = json.loads(path.read_text())
        del metrics["data_dir"]
        path.write_text(json.dumps(metrics))
    rows = {row["model"]: row for row in compare(str(tmp_path), console=Console(file=io.StringIO()))}
    random = rows[RANDOM_MODEL]
    assert (random["test_accuracy_ci_low"], random["test_accuracy_ci_high"]) == wilson_interval(100, 1000)
    assert random["test_accuracy_ci_method"] == "binomial (1000 images)"
    assert not (tmp_path / "no_such_data").exists() and not (tmp_path / "data").exists()


def test_a_metrics_json_without_the_test_counts_is_refused_by_name(tmp_path):
    write_metrics(tmp_path, "mlp", 0, test=0.5, train=0.6, data_dir=tmp_path)
    path = tmp_path / "mlp" / "seed0" / "evaluation" / "metrics.json"
    metrics = json.loads(path.read_text())
    del metrics["splits"]["test"]["images"]
    path.write_text(json.dumps(metrics))
    with pytest.raises(CifarBenchError, match="was not written by cifar-bench evaluate"):
        compare(str(tmp_path), console=Console(file=io.StringIO()))


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
