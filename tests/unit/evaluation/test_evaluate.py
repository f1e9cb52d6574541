"""`cifar-bench evaluate`: every reported number checked against the raw predictions, recomputed here."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import copy_run, imbalanced_batches, snapshot, tiny_batches
from PIL import Image
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cifar_bench.cli import main
from cifar_bench.data.datamodule import stratified_split
from cifar_bench.data.sources import CLASS_NAMES
from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.evaluate import evaluate
from cifar_bench.evaluation.evaluation_files import classification_report
from cifar_bench.models import MLPClassifier

TRAIN_IMAGES, TEST_IMAGES = 200, 40  # the tiny copy: 5 batches of 40, and a test batch of 40


@pytest.fixture(scope="module")
def run(trained_mlp, tmp_path_factory) -> Path:
    """This file's copy of the session's MLP (trained 2 epochs in full precision on the imbalanced copy),
    evaluated below: its predictions can be recomputed exactly."""
    return copy_run(trained_mlp, tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def evaluated(run) -> dict:
    """Evaluate through the CLI twice, recording the run folder before, between and after."""
    before = snapshot(run)
    main(["evaluate", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--batch_size", "64"])
    outputs = {path.name: path.stat().st_mtime_ns for path in (run / "evaluation").iterdir()}
    main(["evaluate", "--ckpt", str(run), "--batch_size", "64"])
    return {"before": before, "after": snapshot(run, outside="evaluation"), "first_outputs": outputs}


@pytest.fixture(scope="module")
def metrics(run, evaluated) -> dict:
    return json.loads((run / "evaluation" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def raw(run, evaluated) -> dict[str, np.ndarray]:
    with np.load(run / "evaluation" / "predictions.npz", allow_pickle=False) as content:
        return {key: content[key].astype(np.int64) for key in content.files}


def independent_report(labels: np.ndarray, predictions: np.ndarray) -> dict:
    """Confusion matrix, per-class counts and precision/recall/F1 in plain numpy (0 where undefined)."""
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    tp = np.diag(confusion).astype(float)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(10), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(10), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(10), where=precision + recall > 0)
    return {
        "confusion": confusion,
        "correct": np.diag(confusion),
        "support": support,
        "accuracy": tp.sum() / len(labels),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro": {"precision": precision.mean(), "recall": recall.mean(), "f1": f1.mean()},
        "weighted": {
            name: (values * support).sum() / support.sum()
            for name, values in (("precision", precision), ("recall", recall), ("f1", f1))
        },
    }


def judged_images() -> dict[str, tuple[torch.Tensor, np.ndarray]]:
    """Per split, the images and labels evaluate judges the tiny run on: of the imbalanced copy's 200 training
    images the 180 it trained on (val_size 20 held out, as seed 0 splits them), and the 40 test images."""
    batches = imbalanced_batches()  # what the data fixture wrote: five training batches, then the test batch
    judged = {}
    for split, chosen in (("train", batches[:-1]), ("test", batches[-1:])):
        pixels = torch.from_numpy(np.concatenate([images for images, _ in chosen])).view(-1, 3, 32, 32)
        labels = np.concatenate([labels for _, labels in chosen])
        kept = stratified_split(torch.from_numpy(labels), 20, 0)[0] if split == "train" else slice(None)
        judged[split] = (pixels[kept], labels[kept])
    return judged


def test_train_figures_are_of_the_images_trained_on_and_test_figures_of_the_whole_test_set(run, raw):
    """The held-out validation images count neither as train nor as test; predictions are unaugmented."""
    model = MLPClassifier.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu").eval()
    for split, (pixels, labels) in judged_images().items():
        with torch.no_grad():
            expected = model(pixels.float() / 255).argmax(dim=1).numpy()  # the MLP's plain profile
        np.testing.assert_array_equal(raw[f"{split}_labels"], labels)
        np.testing.assert_array_equal(raw[f"{split}_predictions"], expected)
    assert (len(raw["train_labels"]), len(raw["test_labels"])) == (TRAIN_IMAGES - 20, TEST_IMAGES)


def test_a_run_that_validated_on_the_test_set_as_the_study_did_is_judged_on_every_training_image(
    run_copy, imbalanced_data
):
    config = yaml.safe_load((run_copy / "config.yaml").read_text())
    config["data"]["val_size"] = 0
    (run_copy / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = evaluate(str(run_copy), data_dir=str(imbalanced_data), batch_size=64, console=Console(file=io.StringIO()))
    assert metrics["splits"]["train"]["images"] == TRAIN_IMAGES


@pytest.mark.parametrize("seed, reason", [("abc", "seed='abc'"), (2**65, "seed=36893488147419103232 is out of range")])
def test_a_data_split_the_config_cannot_make_is_one_clear_error(run_copy, imbalanced_data, seed, reason):
    config = yaml.safe_load((run_copy / "config.yaml").read_text())
    config["data"]["seed"] = seed
    (run_copy / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CifarBenchError, match=f"holds a data split evaluate cannot redo: .*{reason}"):
        evaluate(str(run_copy), data_dir=str(imbalanced_data), batch_size=64, console=Console(file=io.StringIO()))


def test_the_test_logits_are_kept_as_float16_and_give_the_test_predictions(run, evaluated):
    with np.load(run / "evaluation" / "predictions.npz", allow_pickle=False) as content:
        logits, predictions = content["test_logits"], content["test_predictions"]
    assert logits.dtype == np.float16 and logits.shape == (TEST_IMAGES, 10)
    np.testing.assert_array_equal(logits.argmax(axis=1), predictions)


@pytest.mark.parametrize("split", ["train", "test"])
def test_accuracy_and_per_class_counts_equal_those_of_the_raw_predictions(metrics, raw, split):
    expected = independent_report(raw[f"{split}_labels"], raw[f"{split}_predictions"])
    reported = metrics["splits"][split]
    assert reported["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
    assert reported["images"] == len(raw[f"{split}_labels"])
    assert reported["correct"] == expected["correct"].sum()
    for index, name in enumerate(CLASS_NAMES):
        row = reported["per_class"][name]
        assert (row["correct"], row["support"]) == (expected["correct"][index], expected["support"][index])
        assert row["accuracy"] == pytest.approx(expected["correct"][index] / expected["support"][index], abs=1e-6)


@pytest.mark.parametrize("split", ["train", "test"])
def test_per_class_lines_are_in_the_study_form(run, raw, split):
    expected = independent_report(raw[f"{split}_labels"], raw[f"{split}_predictions"])
    lines = [
        f"{split.capitalize()} accuracy of {name} : {100 * correct / support:.2f}% ({correct}/{support})"
        for name, correct, support in zip(CLASS_NAMES, expected["correct"], expected["support"])
    ]
    summary = (run / "evaluation" / "summary.txt").read_text().splitlines()
    start = summary.index(lines[0])
    assert summary[start : start + 10] == lines


@pytest.mark.parametrize("split", ["train", "test"])
def test_precision_recall_f1_and_their_averages_equal_an_independent_computation(metrics, raw, split):
    expected = independent_report(raw[f"{split}_labels"], raw[f"{split}_predictions"])
    reported = metrics["splits"][split]
    for index, name in enumerate(CLASS_NAMES):
        for key in ("precision", "recall", "f1"):
            assert reported["per_class"][name][key] == pytest.approx(expected[key][index], abs=1e-6), (name, key)
    for average in ("macro", "weighted"):
        for key in ("precision", "recall", "f1"):
            assert reported[f"{average}_avg"][key] == pytest.approx(expected[average][key], abs=1e-6), (average, key)


@pytest.mark.parametrize("split", ["train", "test"])
def test_classification_report_file_rounds_the_independent_numbers(run, raw, split):
    expected = independent_report(raw[f"{split}_labels"], raw[f"{split}_predictions"])
    rows = {}
    for line in (run / "evaluation" / f"classification_report_{split}.txt").read_text().splitlines()[2:]:
        if line.strip():
            words = line.split()
            numbers = 2 if words[0] == "accuracy" else 4
            rows[" ".join(words[:-numbers])] = [float(word) for word in words[-numbers:]]
    assert list(rows)[:10] == list(CLASS_NAMES)
    for index, name in enumerate(CLASS_NAMES):
        reported = rows[name]
        assert reported[:3] == pytest.approx(
            [expected[key][index] for key in ("precision", "recall", "f1")], abs=0.005 + 1e-9
        )
        assert reported[3] == expected["support"][index]
    assert rows["accuracy"] == pytest.approx([expected["accuracy"], len(raw[f"{split}_labels"])], abs=0.005 + 1e-9)
    for heading, average in (("macro avg", "macro"), ("weighted avg", "weighted")):
        assert rows[heading][:3] == pytest.approx(
            [expected[average][key] for key in ("precision", "recall", "f1")], abs=0.005 + 1e-9
        )


def test_classification_report_reproduces_scikit_learns_documented_example():
    """scikit-learn's docs: y_true [0, 1, 2, 2, 2], y_pred [0, 0, 2, 2, 1]; the numbers are theirs."""
    per_class = {
        "class 0": {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1},
        "class 1": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "class 2": {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3},
    }
    metrics = {
        "per_class": per_class,
        "accuracy": 0.6,
        "images": 5,
        "macro_avg": {"precision": 0.5, "recall": 5 / 9, "f1": 22 / 45},
        "weighted_avg": {"precision": 0.7, "recall": 0.6, "f1": 46 / 75},
    }
    assert classification_report(metrics) == (
        "              precision    recall  f1-score   support\n"
        "\n"
        "     class 0       0.50      1.00      0.67         1\n"
        "     class 1       0.00      0.00      0.00         1\n"
        "     class 2       1.00      0.67      0.80         3\n"
        "\n"
        "    accuracy                           0.60         5\n"
        "   macro avg       0.50      0.56      0.49         5\n"
        "weighted avg       0.70      0.60      0.61         5\n"
    )


@pytest.mark.parametrize("split", ["train", "test"])
def test_confusion_matrices_are_written_as_csv_with_class_names(run, metrics, raw, split):
    expected = independent_report(raw[f"{split}_labels"], raw[f"{split}_predictions"])["confusion"]
    with open(run / "evaluation" / f"confusion_{split}.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["true \\ predicted", *CLASS_NAMES]
    assert [row[0] for row in rows[1:]] == list(CLASS_NAMES)
    np.testing.assert_array_equal(np.array([row[1:] for row in rows[1:]], dtype=np.int64), expected)
    np.testing.assert_array_equal(np.array(metrics["splits"][split]["confusion_matrix"]), expected)


@pytest.mark.parametrize(
    "name",
    [
        "confusion_train.png",
        "confusion_test.png",
        "sample_predictions.png",
        "curves.png",
        "reliability_train.png",
        "reliability_test.png",
    ],
)
def test_figures_are_valid_png_images(run, evaluated, name):
    with Image.open(run / "evaluation" / name) as image:
        image.verify()
        assert image.format == "PNG" and min(image.size) > 100


def test_curves_are_the_per_epoch_scalars_of_the_run_event_files(run, metrics):
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    epoch_at = {event.step: int(event.value) + 1 for event in events.Scalars("epoch")}
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc"):
        logged = events.Scalars(tag)
        assert metrics["curves"][tag]["epoch"] == [epoch_at[event.step] for event in logged] == [1, 2]
        assert metrics["curves"][tag]["value"] == pytest.approx([event.value for event in logged])
    assert metrics["epochs_trained"] == 2


def test_training_time_is_the_sum_of_the_fit_sessions_recorded_in_environment_json(run, metrics, run_copy, tiny_data):
    sessions = json.loads((run / "environment.json").read_text())["sessions"]
    assert [session["interrupted"] for session in sessions] == [None]
    assert 0 < metrics["training_time_s"] == pytest.approx(sum(session["wall_s"] for session in sessions))
    (run_copy / "environment.json").unlink()  # a run trained before environment.json was written
    older = evaluate(str(run_copy), data_dir=str(tiny_data), batch_size=64, console=Console(file=io.StringIO()))
    assert older["training_time_s"] is None
    assert "No training time" in (run_copy / "evaluation" / "summary.txt").read_text()


def test_metrics_json_describes_the_model_and_the_run(run, metrics):
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    parameters = 3072 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    assert metrics["model"] == "mlp" and metrics["model_class"] == "cifar_bench.models.MLPClassifier"
    assert (metrics["weight_layers"], metrics["trainable_params"], metrics["total_params"]) == (
        3,
        parameters,
        parameters,
    )
    # Places, never machine-local paths: the run in its save_dir (as in results/), the checkpoint in the run.
    assert (metrics["run"], metrics["checkpoint"]) == ("mlp/version_0", "checkpoints/last.ckpt")
    # An MLP has no pretrained weights, and the study counts its parameters as they are built.
    assert metrics["weights"] is None
    assert (metrics["study_trainable_params"], metrics["study_total_params"]) == (parameters, parameters)
    assert metrics["checkpoint_epoch"] == checkpoint["epoch"] + 1
    assert (metrics["seed"], metrics["precision"], metrics["transform_profile"]) == (0, "32-true", "plain")
    assert metrics["class_names"] == list(CLASS_NAMES)


def test_evaluation_leaves_the_run_untouched_and_a_rerun_rewrites_only_its_own_outputs(run, evaluated):
    assert evaluated["after"] == evaluated["before"]
    outputs = {path.name: path.stat().st_mtime_ns for path in (run / "evaluation").iterdir()}
    assert outputs.keys() == evaluated["first_outputs"].keys()
    assert not [name for name in outputs if name.endswith(".partial")]
    assert all(outputs[name] >= evaluated["first_outputs"][name] for name in outputs)


def test_evaluate_defaults_to_the_data_dir_the_run_was_trained_on(metrics, imbalanced_data):
    # Named by its place in the working folder, else (here, under the tests' tmp) by its name alone.
    assert metrics["data_dir"] == imbalanced_data.name


def test_links_planted_in_the_evaluation_folder_are_never_written_through(run_copy, imbalanced_data, tmp_path):
    victims = {name: tmp_path / f"victim-{name}" for name in (".metrics.json.partial", "summary.txt")}
    (run_copy / "evaluation").mkdir()
    for name, victim in victims.items():
        victim.write_text("precious\n")
        (run_copy / "evaluation" / name).symlink_to(victim)

    evaluate(str(run_copy), data_dir=str(imbalanced_data), batch_size=64)

    assert all(victim.read_text() == "precious\n" for victim in victims.values())
    assert not (run_copy / "evaluation" / "summary.txt").is_symlink()
    assert json.loads((run_copy / "evaluation" / "metrics.json").read_text())["model"] == "mlp"


@pytest.fixture
def run_copy(trained_mlp, tmp_path) -> Path:
    """A disposable copy of the trained run (logger layout kept: <save_dir>/mlp/version_0)."""
    return copy_run(trained_mlp, tmp_path)


def set_model_class(run: Path, class_path: str) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["class_path"] = class_path
    (run / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize("precision", ["64-true", "bf16-true"])
def test_a_true_precision_evaluates_with_inputs_in_the_weights_dtype(run_copy, imbalanced_data, precision):
    metrics = evaluate(
        str(run_copy), data_dir=str(imbalanced_data), precision=precision, console=Console(file=io.StringIO())
    )
    assert metrics["precision"] == precision and metrics["splits"]["test"]["images"] == 40


def test_a_run_without_a_checkpoint_is_a_clear_error(run_copy):
    shutil.rmtree(run_copy / "checkpoints")
    with pytest.raises(CifarBenchError, match="has no checkpoints/last.ckpt"):
        evaluate(run_copy)
    with pytest.raises(CifarBenchError, match="no checkpoint at"):
        evaluate(run_copy / "checkpoints" / "last.ckpt")


def test_a_checkpoint_without_the_run_config_is_a_clear_error(run_copy):
    (run_copy / "config.yaml").unlink()
    with pytest.raises(CifarBenchError, match="no config.yaml"):
        evaluate(run_copy)


def test_a_config_naming_an_unknown_model_is_a_clear_error(run_copy):
    set_model_class(run_copy, "cifar_bench.models.ResNet50Classifier")
    with pytest.raises(CifarBenchError, match="unknown model 'cifar_bench.models.ResNet50Classifier'"):
        evaluate(run_copy)


def test_a_checkpoint_of_another_model_is_a_clear_error(run_copy):
    set_model_class(run_copy, "cifar_bench.models.CNNClassifier")
    with pytest.raises(CifarBenchError, match="is not a checkpoint of CNNClassifier"):
        evaluate(run_copy)


def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(run_copy):
    (run_copy / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CifarBenchError, match="last.ckpt is truncated or not a checkpoint"):
        evaluate(run_copy)


def test_a_checkpoint_naming_a_weight_by_a_number_is_a_clear_error(run_copy):
    path = run_copy / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["state_dict"][1] = torch.zeros(1)
    torch.save(checkpoint, path)
    with pytest.raises(CifarBenchError, match="names a weight 1, not by a string"):
        evaluate(run_copy)


def test_the_model_is_rebuilt_with_every_saved_setting_and_refused_by_name_when_one_does_not_fit(run_copy):
    from cifar_bench.evaluation.runs import find_run, load_model

    path = run_copy / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model, _ = load_model(find_run(run_copy))
    saved = {key: value for key, value in checkpoint["hyper_parameters"].items() if not key.startswith("_")}
    assert {key: model.hparams[key] for key in saved} == saved  # lr, momentum... reach the base class too
    checkpoint["hyper_parameters"]["dropout"] = 1.5
    torch.save(checkpoint, path)
    with pytest.raises(
        CifarBenchError,
        match=r"holds settings MLPClassifier does not take \(MLPClassifier: dropout=1.5 is out of range",
    ):
        load_model(find_run(run_copy))


def test_the_command_line_reports_a_missing_checkpoint_as_one_error_line(run_copy, capsys):
    shutil.rmtree(run_copy / "checkpoints")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--ckpt", str(run_copy)])
    assert exit_info.value.code == 2
    error_output = capsys.readouterr().err.strip().splitlines()
    assert len(error_output) == 1 and error_output[0].startswith("error: ")


def test_prediction_never_augments_even_for_a_model_trained_with_augmentation():
    """A CNN's profile flips and rotates training images; evaluation only normalises them."""
    from lightning_fabric import Fabric

    from cifar_bench.data.augment import CIFAR10_MEAN, CIFAR10_STD
    from cifar_bench.evaluation.evaluate import logits_in_precision
    from cifar_bench.models import CNNClassifier

    torch.manual_seed(0)
    model = CNNClassifier(widths=(4, 8, 8), hidden=(16, 16)).eval()
    images = torch.from_numpy(tiny_batches()[0][0]).view(-1, 3, 32, 32)
    mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model((images.float() / 255 - mean) / std)
    fabric = Fabric(accelerator="cpu", devices=1, precision="32-true")
    for _ in range(2):
        torch.testing.assert_close(logits_in_precision(model, images, fabric, batch_size=16), expected)


def test_a_vgg16_run_loads_without_its_pretrained_weights_source(tmp_path):
    """The checkpoint holds every weight, so a weights file that is gone (or a download) is not needed."""
    import pytorch_lightning as pl

    from cifar_bench.evaluation.evaluate import find_run, load_model
    from cifar_bench.models import VGG16Classifier

    with torch.device("meta"):  # shapes only: initialising 134M parameters would take seconds
        model = VGG16Classifier(trainable_layers=2, weights="none")
    generator = torch.Generator().manual_seed(0)
    state_dict = {key: torch.randn(value.shape, generator=generator) for key, value in model.state_dict().items()}
    hyper_parameters = {**model.hparams, "weights": str(tmp_path / "deleted_vgg16_weights.pth")}
    run = tmp_path / "vgg16_last2" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint = {
        "state_dict": state_dict,
        "hyper_parameters": hyper_parameters,
        "epoch": 29,
        "global_step": 1,
        "pytorch-lightning_version": pl.__version__,
    }
    torch.save(checkpoint, run / "checkpoints" / "last.ckpt")
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"class_path": "cifar_bench.models.VGG16Classifier"}}))
    loaded, bookkeeping = load_model(find_run(run))
    assert isinstance(loaded, VGG16Classifier) and bookkeeping["epoch"] == 29
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in state_dict.items())
    assert loaded.parameter_counts() == model.parameter_counts()


def independent_calibration(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> dict:
    """ECE (L1, equal-width bins, upper edges belong to the next bin up) and top-3 accuracy in plain numpy."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == labels
    index = np.minimum(np.floor(confidence * n_bins).astype(int), n_bins - 1)
    ece = sum(
        abs(confidence[index == b].mean() - correct[index == b].mean()) * (index == b).mean()
        for b in range(n_bins)
        if (index == b).any()
    )
    top3 = (np.argsort(-probabilities, axis=1)[:, :3] == labels[:, None]).any(axis=1).mean()
    return {
        "ece": ece,
        "top3_accuracy": top3,
        "accuracy": correct.mean(),
        "counts": np.bincount(index, minlength=n_bins),
    }


@pytest.fixture(scope="module")
def with_tta(run, tmp_path_factory) -> dict:
    return evaluate(
        str(run), batch_size=64, tta=True, out=str(tmp_path_factory.mktemp("tta")), console=Console(width=200)
    )


def mlp_logits(run: Path, flip: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    model = MLPClassifier.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu").eval()
    result = {}
    for split, (pixels, labels) in judged_images().items():
        pixels = pixels.flip(-1) if flip else pixels
        with torch.no_grad():
            result[split] = (model(pixels.float() / 255).numpy().astype(np.float64), labels)
    return result


@pytest.mark.parametrize("split", ["train", "test"])
def test_calibration_error_top3_and_reliability_bins_equal_an_independent_computation(run, metrics, split):
    logits, labels = mlp_logits(run)[split]
    expected = independent_calibration(logits, labels)
    reported = metrics["splits"][split]
    assert reported["ece"] == pytest.approx(expected["ece"], abs=1e-5)
    assert reported["top3_accuracy"] == pytest.approx(expected["top3_accuracy"], abs=1e-6)
    assert [b["images"] for b in reported["reliability"]] == expected["counts"].tolist()
    assert "tta_accuracy" not in reported  # off by default


@pytest.mark.parametrize("split", ["train", "test"])
def test_flip_tta_averages_the_logits_of_each_image_and_its_mirror_beside_the_plain_figures(
    run, metrics, with_tta, split
):
    (plain, labels), (mirrored, _) = mlp_logits(run)[split], mlp_logits(run, flip=True)[split]
    expected = independent_calibration((plain + mirrored) / 2, labels)
    reported = with_tta["splits"][split]
    assert reported["tta_accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
    assert reported["tta_top3_accuracy"] == pytest.approx(expected["top3_accuracy"], abs=1e-6)
    assert reported["tta_ece"] == pytest.approx(expected["ece"], abs=1e-5)
    for key in ("accuracy", "top3_accuracy", "ece"):  # the plain figures stay what they are without TTA
        assert reported[key] == pytest.approx(metrics["splits"][split][key], abs=1e-7)


def test_tensorboards_hparams_tab_lists_the_hyperparameters_with_the_final_validation_metrics(run):
    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {info.name.tag for info in experiment.metric_infos} == {"hp/val_acc", "hp/val_f1_macro"}
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert {"lr", "optimizer", "hidden"} <= set(session.hparams) and "hp_metric" not in events.Tags()["scalars"]
    for tag in ("acc", "f1_macro"):  # a 0 placeholder at fit start, then every validation's value
        assert [e.value for e in events.Scalars(f"hp/val_{tag}")] == [0.0] + [
            e.value for e in events.Scalars(f"val/{tag}")
        ]
