"""VGG16 said as it is: the weights a run started from (file by name and digest, pretrained, random and frozen
random layers) recorded by the fit, carried by evaluate, said by compare and the report; its parameters as
the study counts them beside the network as built; and no machine-local path in what they write."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import cli_args, with_random_weights
from rich.console import Console

from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.compare import compare, markdown_table, model_row
from cifar_bench.evaluation.evaluate import evaluate
from cifar_bench.evaluation.evaluated import read_evaluation
from cifar_bench.evaluation.pretrained import NOT_RECORDED, layer_span, params_text, weights_text
from cifar_bench.models.networks import VGG16, WEIGHT_LAYER_NAMES
from cifar_bench.report.command import report
from cifar_bench.run_folder import RunFolder, weights_problem
from cifar_bench.training.callbacks import RecordEnvironment
from cifar_bench.training.lightning_cli import run_lightning_cli

CONVS = list(WEIGHT_LAYER_NAMES[:13])
FC = ["fc6", "fc7", "fc8"]
STUDY_TOTAL = 134_301_514  # torchvision.models.vgg16(num_classes=10): tests/unit/models/test_vgg16_model.py
VGG16_CLASS = "cifar_bench.models.VGG16Classifier"


def record(pretrained=CONVS, random=FC, trained=("fc7", "fc8"), file="conv.pth", sha256="ab" * 32) -> dict:
    return {
        "file": file,
        "sha256": sha256,
        "pretrained_layers": list(pretrained),
        "random_layers": list(random),
        "trained_layers": list(trained),
    }


# --- said in words ---------------------------------------------------------------------------------------


def test_layers_are_named_in_network_order_with_runs_of_three_or_more_as_spans():
    assert layer_span(CONVS) == "conv1_1–conv5_3"
    assert layer_span(["fc8", "fc7", "fc6"]) == "fc6–fc8"
    assert layer_span(["conv5_2", "conv5_3", "fc7"]) == "conv5_2, conv5_3, fc7"
    assert layer_span(["fc8", "odd"]) == "fc8, odd"


def test_the_conv_only_weights_say_fc6_to_fc8_start_random_and_last2s_fc6_is_frozen_random():
    said = weights_text(record())
    assert said == (
        f"conv1_1–conv5_3 pretrained (conv.pth, sha256 {'ab' * 32}); fc6–fc8 start random; "
        "fc6 is frozen random (never trained)"
    )
    assert "frozen" not in weights_text(record(trained=FC))  # last3: every random layer is trained


def test_torchvisions_full_weights_say_every_layer_but_the_new_fc8_is_pretrained():
    said = weights_text(record(pretrained=WEIGHT_LAYER_NAMES[:15], random=["fc8"], file="vgg16-397923af.pth"))
    assert said.startswith("conv1_1–fc7 pretrained (vgg16-397923af.pth, sha256 ") and said.endswith(
        "; fc8 starts random"
    )


def test_parameters_are_given_as_the_study_counts_them_with_the_network_as_built_beside():
    vgg = {"trainable_params": 16_822_282, "total_params": 33_638_218}
    counted = {**vgg, "study_trainable_params": 16_822_282, "study_total_params": STUDY_TOTAL}
    assert params_text(counted, True) == "16,822,282 / 134,301,514 (as built, fc6 folded: 16,822,282 / 33,638,218)"
    assert params_text(vgg, True) == "16,822,282 / 33,638,218 (as built; the study's count not recorded)"
    mlp = {"trainable_params": 5, "total_params": 7}
    assert params_text(mlp, False) == params_text({**mlp, "study_trainable_params": 5, "study_total_params": 7}, False)
    assert params_text(mlp, False) == "5 / 7"  # other models unchanged


@pytest.mark.parametrize(
    "broken",
    [
        "conv.pth",
        {**record(), "file": "/work/shared/weights/conv.pth"},
        {**record(), "sha256": "not a digest"},
        {**record(), "random_layers": "fc6"},
        {**record(), "trained_layers": [1]},
        {**record(), "pretrained_layers": ["conv"] * 65},
    ],
    ids=["not an object", "a path", "a bad digest", "a string", "a number", "too many"],
)
def test_a_weights_record_that_is_not_one_is_refused_and_compare_says_which_file(broken, tmp_path):
    assert weights_problem(broken) is not None
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({**hand_metrics(), "weights": broken}))
    with pytest.raises(CifarBenchError, match=r"metrics.json was not written by cifar-bench evaluate \(weights: "):
        read_evaluation(path)


def hand_metrics(**fields) -> dict:
    test = {"accuracy": 0.6, "correct": 600, "images": 1000}
    return {
        "model": "vgg16_last2",
        "model_class": VGG16_CLASS,
        "seed": 0,
        "trainable_params": 16_822_282,
        "total_params": 33_638_218,
        "splits": {"test": test, "train": {"accuracy": 0.7}},
        **fields,
    }


def test_a_vgg16_run_evaluated_before_weights_were_recorded_says_so_never_guessed():
    row = model_row("vgg16_last2", [hand_metrics(run="/work/study/lightning_logs/vgg16_last2/seed0")], [])
    text = markdown_table([row])
    assert "(as built; the study's count not recorded)" in text and NOT_RECORDED in text
    assert "/work/" not in text


def fit_session(run: Path, weights: dict | None) -> dict:
    """One fit session as RecordEnvironment sees it, of a model whose ``weights_record`` is ``weights``."""
    trainer = SimpleNamespace(
        logger=SimpleNamespace(log_dir=str(run)), precision="32-true", callbacks=[], current_epoch=1
    )
    callback, module = RecordEnvironment(), SimpleNamespace(weights_record=lambda: weights)
    callback.on_fit_start(trainer, module)
    callback.on_fit_end(trainer, module)
    return json.loads((run / "environment.json").read_text())


def test_the_first_fit_session_records_the_starting_weights_and_a_resumed_one_keeps_them(tmp_path):
    first, other = record(), record(file="elsewhere.pth")
    assert fit_session(tmp_path, first)["weights"] == first
    resumed = fit_session(tmp_path, other)  # the resumed session loads weights the checkpoint then replaces
    assert resumed["weights"] == first and len(resumed["sessions"]) == 2
    assert RunFolder(tmp_path).weights_record() == first


def test_a_run_begun_before_weights_were_recorded_is_not_given_those_of_its_resumption(tmp_path):
    fit_session(tmp_path, None)  # as the environment.json of an earlier version: no weights
    assert "weights" not in fit_session(tmp_path, record())
    assert RunFolder(tmp_path).weights_record() is None


# --- a VGG16 fit from a conv-only file, evaluated, compared, reported ------------------------------------


@pytest.fixture(scope="module")
def vgg_run(tiny_binary_data, tmp_path_factory) -> dict:
    """vgg16_last2 fit for 2 steps from a conv-only weights file (the 13 conv layers, seeded random values:
    the offline file's layout), evaluated; compare and report then run on its logs folder."""
    root = tmp_path_factory.mktemp("vgg_said")
    weights = root / "conv_only.pth"
    with torch.device("meta"):
        net = VGG16(fold_fc6=True)
    torch.save(with_random_weights(net.features).state_dict(prefix="features."), weights)
    logs = root / "logs"
    run_lightning_cli(
        cli_args(
            "fit", "vgg16_last2", tiny_binary_data, logs, "--model.weights", str(weights),
            "--model.feature_store", "null", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1", "--trainer.precision", "32-true",
            "--trainer.enable_progress_bar", "false", batch_size=4,
        )
    )  # fmt: skip
    (run,) = (logs / "vgg16_last2").glob("version_*")
    quiet = Console(file=io.StringIO(), width=300)
    evaluate(str(run), batch_size=64, console=quiet)
    compare(str(logs), out=str(root / "compared"), console=quiet)
    report(str(logs), console=quiet)
    return {"root": root, "weights": weights, "run": run, "logs": logs, "compared": root / "compared"}


def test_the_fit_records_the_weights_file_by_name_and_digest_and_which_layers_start_random(vgg_run):
    environment = json.loads((vgg_run["run"] / "environment.json").read_text())
    digest = hashlib.sha256(vgg_run["weights"].read_bytes()).hexdigest()
    assert environment["weights"] == record(file="conv_only.pth", sha256=digest)


def test_evaluate_carries_the_weights_and_counts_parameters_as_the_study(vgg_run):
    metrics = json.loads((vgg_run["run"] / "evaluation" / "metrics.json").read_text())
    assert metrics["weights"] == json.loads((vgg_run["run"] / "environment.json").read_text())["weights"]
    assert (metrics["trainable_params"], metrics["total_params"]) == (16_822_282, 33_638_218)  # fc6 folded
    assert (metrics["study_trainable_params"], metrics["study_total_params"]) == (16_822_282, STUDY_TOTAL)
    assert (metrics["run"], metrics["checkpoint"]) == (f"vgg16_last2/{vgg_run['run'].name}", "checkpoints/last.ckpt")


def test_compare_and_the_report_say_fc6_to_fc8_start_random_and_fc6_is_frozen_random(vgg_run):
    compared = (vgg_run["compared"] / "comparison.md").read_text()
    reported = (vgg_run["logs"] / "report.md").read_text()
    for text in (compared, reported):
        assert "conv1\\_1–conv5\\_3 pretrained (conv\\_only.pth, sha256 " in text
        assert "fc6–fc8 start random; fc6 is frozen random (never trained)" in text
        assert "16,822,282 / 134,301,514 (as built, fc6 folded: 16,822,282 / 33,638,218)" in text
    assert "| model: weights | conv\\_only.pth |" in reported  # the recipe names the file, not its folder
    csv = (vgg_run["compared"] / "comparison.csv").read_text()
    assert f",16822282,{STUDY_TOTAL}," in csv and "fc6 is frozen random" in csv


def test_nothing_written_names_a_machine_local_path(vgg_run, tiny_binary_data):
    written = [
        vgg_run["run"] / "evaluation" / "metrics.json",
        vgg_run["run"] / "evaluation" / "summary.txt",
        *(vgg_run["compared"] / name for name in ("comparison.md", "comparison.csv")),
        *(vgg_run["logs"] / name for name in ("report.md", "report.html")),
    ]
    local = {str(vgg_run["root"]), str(tiny_binary_data), str(Path.cwd()), str(Path.home())}
    for path in written:
        text = path.read_text()
        assert not [folder for folder in local if folder in text], path.name
