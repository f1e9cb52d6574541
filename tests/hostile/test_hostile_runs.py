"""Runs that lie, met for real: a predictions.npz that expands to gigabytes or declares what no evaluation
holds, a metrics.json whose numbers are NaN, of the wrong type or out of range, a checkpoint whose
hyperparameters describe a model hundreds of times larger than its weights or that holds a weight without
data. Each is one error naming the file, read within a stated bound, with nothing large allocated. And a
checkpoint rewritten between its check and its load gives the model the weights checked."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cli_args, copy_run, snapshot
from rich.console import Console

from cifar_bench.cli import main
from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation import runs
from cifar_bench.evaluation.compare import compare
from cifar_bench.evaluation.paired import MAX_MEMBER_BYTES, MAX_PREDICTIONS
from cifar_bench.evaluation.runs import find_run, load_model
from cifar_bench.training import lightning_cli
from cifar_bench.training.checkpoints import read_checkpoint

IMAGES = 1000


def metrics_of(model: str, seed: int = 0) -> dict:
    """What evaluate writes into metrics.json, reduced to what compare reads."""
    return {
        "model": model,
        "seed": seed,
        "run": f"/runs/{model}/seed{seed}",
        "splits": {
            "test": {"accuracy": 0.5, "correct": 500, "images": IMAGES},
            "train": {"accuracy": 0.6, "correct": 3000, "images": 5000},
        },
        "weight_layers": 3,
        "epochs_trained": 2,
        "trainable_params": 1000,
        "total_params": 1200,
        "training_time_s": 60.0,
    }


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_header(shape: tuple, descr: str = "|u1") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def evaluated(root: Path, model: str, metrics: dict | None = None, predictions: bytes | None = None) -> Path:
    """One evaluated run under ``root``: its metrics.json and a predictions.npz (``predictions`` as the test
    predictions' raw npy member, if given)."""
    folder = root / model / "seed0" / "evaluation"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics or metrics_of(model)))
    labels = np.arange(IMAGES, dtype=np.uint8) % 10
    with zipfile.ZipFile(folder / "predictions.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("test_labels.npy", npy(labels))
        archive.writestr("test_predictions.npy", predictions if predictions is not None else npy(labels[::-1]))
    return folder


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_a_small_predictions_npz_that_would_expand_to_gigabytes_is_refused_before_it_expands(tmp_path):
    evaluated(tmp_path, "a")
    bomb = evaluated(tmp_path, "b") / "predictions.npz"
    declared = 2_500_000_000  # 2.5 GB of zeros, as one uint8 array; deflated to about 2.4 MB
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("test_labels.npy", npy(np.arange(IMAGES, dtype=np.uint8) % 10))
        with archive.open("test_predictions.npy", "w", force_zip64=True) as member:
            member.write(npy_header((declared,)))
            chunk = bytes(2**24)
            for _ in range(declared // len(chunk)):
                member.write(chunk)
    assert bomb.stat().st_size < 3_000_000
    tracemalloc.start()
    try:
        with pytest.raises(
            CifarBenchError, match=f"would expand to 2,499,805,312 bytes, more than {MAX_MEMBER_BYTES:,}"
        ):
            compare(str(tmp_path), pair=["a", "b"], out=str(tmp_path / "out"), console=quiet())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak:,} bytes allocated"


def test_a_member_whose_zip_directory_understates_its_size_is_expanded_no_further_than_declared(tmp_path):
    evaluated(tmp_path, "a")
    path = evaluated(tmp_path, "b", predictions=npy_header((50_000_000,)) + bytes(50_000_000)) / "predictions.npz"
    content = bytearray(path.read_bytes())
    entry = content.rindex(b"PK\x01\x02")  # the central directory entry of the last member, test_predictions
    struct.pack_into("<I", content, entry + 24, 2000)  # its uncompressed size: 2,000 bytes, not 50 MB
    path.write_bytes(content)
    tracemalloc.start()
    try:
        with pytest.raises(CifarBenchError, match="Bad CRC-32 for file 'test_predictions.npy'"):
            compare(str(tmp_path), pair=["a", "b"], out=str(tmp_path / "out"), console=quiet())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"{peak:,} bytes allocated"  # reading the file takes 16 MB; expanding 50 MB more


HOSTILE_PREDICTIONS = {
    "fewer predictions than labels": (
        npy(np.zeros(IMAGES - 1, dtype=np.uint8)),
        "1000 test labels but 999 predictions",
    ),
    "a declared shape beyond any memory": (npy_header((2**62,)) + bytes(64), "Unable to allocate 4.00 EiB"),
    "a negative declared length": (npy_header((-1,)) + bytes(64), "negative dimensions are not allowed"),
    "two dimensions": (npy(np.zeros((IMAGES, 2), dtype=np.uint8)), "has shape (1000, 2), not one dimension"),
    "more entries than allowed": (
        npy(np.zeros(MAX_PREDICTIONS + 1, dtype=np.uint8)),
        f"has shape ({MAX_PREDICTIONS + 1},), not one dimension of at most {MAX_PREDICTIONS:,} entries",
    ),
    "floats with NaN": (npy(np.full(IMAGES, np.nan)), "holds float64, not integer class indices"),
    "pickled objects": (npy(np.array([None] * IMAGES, dtype=object)), "Object arrays cannot be loaded"),
    "a class index out of range": (npy(np.full(IMAGES, 200, dtype=np.uint8)), "outside the class indices 0..9"),
    "a truncated array": (npy_header((IMAGES,)) + bytes(10), "EOF: reading array data"),
    "not an npy array": (b"plain bytes", "test_predictions is not an npy array"),
}


@pytest.mark.parametrize("content, reason", HOSTILE_PREDICTIONS.values(), ids=HOSTILE_PREDICTIONS.keys())
def test_pair_with_predictions_no_evaluation_writes_is_one_error_naming_the_file(tmp_path, content, reason):
    evaluated(tmp_path, "a")
    evaluated(tmp_path, "b", predictions=content)
    with pytest.raises(CifarBenchError, match="b/seed0/evaluation/predictions.npz is missing or not what") as error:
        compare(str(tmp_path), pair=["a", "b"], out=str(tmp_path / "out"), console=quiet())
    assert reason in str(error.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("plant", ["fifo", "link to /dev/zero"])
def test_a_predictions_npz_that_would_hang_or_never_end_is_one_error(tmp_path, plant):
    evaluated(tmp_path, "a")
    path = evaluated(tmp_path, "b") / "predictions.npz"
    path.unlink()
    os.mkfifo(path) if plant == "fifo" else path.symlink_to("/dev/zero")
    with pytest.raises(CifarBenchError, match="predictions.npz is missing or not what evaluate writes"):
        compare(str(tmp_path), pair=["a", "b"], out=str(tmp_path / "out"), console=quiet())


def edited(change) -> dict:
    metrics = metrics_of("b")
    change(metrics)
    return metrics


HOSTILE_METRICS = {
    "NaN test accuracy": (lambda m: m["splits"]["test"].update(accuracy=float("nan")), "test accuracy nan"),
    "infinite train accuracy": (lambda m: m["splits"]["train"].update(accuracy=float("inf")), "train accuracy inf"),
    "accuracy above 1": (lambda m: m["splits"]["test"].update(accuracy=1.5), "test accuracy 1.5"),
    "accuracy as text": (lambda m: m["splits"]["test"].update(accuracy="0.9"), "test accuracy '0.9'"),
    "splits as a list": (lambda m: m.update(splits=[1, 2]), "no splits"),
    "the model as a list": (lambda m: m.update(model=["b"]), "model ['b'] is not a name"),
    "no test split": (lambda m: m["splits"].pop("test"), "no test split"),
    "zero test images": (lambda m: m["splits"]["test"].update(images=0, correct=0), "images=0"),
    "more correct than images": (lambda m: m["splits"]["test"].update(correct=10**9), "correct=1000000000"),
    "NaN training time": (lambda m: m.update(training_time_s=float("nan")), "training_time_s nan"),
    "negative training time": (lambda m: m.update(training_time_s=-5.0), "training_time_s -5.0"),
    "parameters as text": (lambda m: m.update(trainable_params="many"), "trainable_params 'many'"),
    "weight layers as a list": (lambda m: m.update(weight_layers=[3]), "weight_layers [3]"),
    "the seed as text": (lambda m: m.update(seed="zero"), "seed 'zero'"),
    "the run as a number": (lambda m: m.update(run=7), "run 7"),
    # what a report lays out and draws per class: bounded by the code, never by the file (~1 TB of padded rows)
    "a class name of 8 MB": (
        lambda m: m["splits"]["test"].update(per_class={"x" * 8_000_000: {}, **{str(i): {} for i in range(50)}}),
        "test per_class holds a class name that is not text of at most 200 characters",
    ),
    "a training time of 1e308": (lambda m: m.update(training_time_s=1e308), "training_time_s 1e+308 is not a duration"),
    "140,000 classes": (
        lambda m: m.update(class_names=[str(i) for i in range(140_000)]),
        "class_names is not a list of at most 100 classes",
    ),
    "a 2000 x 2000 confusion matrix": (
        lambda m: m["splits"]["train"].update(confusion_matrix=[[0] * 2000] * 2000),
        "train confusion_matrix is not at most 100 by 100",
    ),
}


def test_predictions_compressed_otherwise_than_numpy_writes_are_refused_before_they_expand(tmp_path, capsys):
    """zipfile bounds what it expands by the declared size for deflate only: a bzip2 member of a few KB may
    expand to gigabytes before it is cut to that size."""
    evaluated(tmp_path, "a")
    folder = evaluated(tmp_path, "b")
    labels = np.arange(IMAGES, dtype=np.uint8) % 10
    with zipfile.ZipFile(folder / "predictions.npz", "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("test_labels.npy", npy(labels))
        archive.writestr("test_predictions.npy", npy(labels))
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(tmp_path), "--pair", "[a,b]", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "compressed otherwise than numpy writes" in line


def test_a_metrics_json_with_an_integer_past_a_float_is_one_error_line_naming_the_file(tmp_path, capsys):
    evaluated(tmp_path, "a", metrics=edited(lambda m: m.update(training_time_s=10**400)))
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {tmp_path}/a/seed0/evaluation/metrics.json is not readable JSON (ValueError)")


@pytest.mark.parametrize("change, reason", HOSTILE_METRICS.values(), ids=HOSTILE_METRICS.keys())
def test_compare_on_a_metrics_json_that_lies_is_one_error_line_naming_the_file(tmp_path, capsys, change, reason):
    evaluated(tmp_path, "a")
    evaluated(tmp_path, "b", metrics=edited(change))
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(tmp_path), "--pair", "[a,b]", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {tmp_path}/b/seed0/evaluation/metrics.json was not written by cifar-bench evaluate")
    assert reason in line
    assert not (tmp_path / "out").exists()


def test_a_folder_named_like_a_home_is_read_as_written_and_an_unknown_home_typed_is_one_error_line(
    tmp_path, monkeypatch, capsys
):
    """``~x`` found in a folder is a name, not ~x's home (pathlib raised "Could not determine home directory")."""
    evaluated(tmp_path, "~nosuchuser_zz")
    evaluated(tmp_path, "b")
    monkeypatch.chdir(tmp_path)
    main(["compare", ".", "--out", "out"])
    assert "~nosuchuser\\_zz" in (tmp_path / "out" / "comparison.md").read_text()
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "~nosuchuser_zz/logs"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ~nosuchuser_zz/logs: cannot expand its '~'")


def test_a_model_name_that_is_no_utf_8_text_is_written_escaped_not_a_traceback(tmp_path):
    """JSON may carry a lone surrogate (what Python makes of an undecodable file name): it cannot be UTF-8."""
    evaluated(tmp_path, "a", metrics=metrics_of("caf\udce9"))
    compare(str(tmp_path), out=str(tmp_path / "out"), console=Console(file=io.StringIO()))
    table = (tmp_path / "out" / "comparison.md").read_text()
    assert "| caf" in table and "udce9 |" in table  # the surrogate written as its escape


def test_a_failure_marker_naming_its_model_by_a_list_is_one_error_naming_it(tmp_path):
    evaluated(tmp_path, "a")
    (tmp_path / "a" / "failed-seed1.json").write_text(json.dumps({"model": ["a"]}))
    with pytest.raises(CifarBenchError, match=r"failed-seed1.json names model \['a'\], not a name"):
        compare(str(tmp_path), out=str(tmp_path / "out"), console=quiet())


def real_linear_layers(monkeypatch) -> list[int]:
    """The sizes of the Linear weights built from now on, off the meta device: what was allocated."""
    sizes: list[int] = []
    build = torch.nn.Linear.__init__

    def recorded(layer, *args, **kwargs):
        build(layer, *args, **kwargs)
        if not layer.weight.is_meta:
            sizes.append(layer.weight.numel())

    monkeypatch.setattr(torch.nn.Linear, "__init__", recorded)
    return sizes


def with_hyperparameters(run: Path, **changes) -> Path:
    path = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"].update(changes)
    torch.save(checkpoint, path)
    return path


def test_a_checkpoint_whose_hyperparameters_describe_461m_parameters_allocates_none_of_them(
    trained_mlp, tmp_path, monkeypatch
):
    run = copy_run(trained_mlp, tmp_path / "logs")
    path = with_hyperparameters(run, hidden=[20000, 20000])
    assert path.stat().st_size < 20 * 2**20
    sizes = real_linear_layers(monkeypatch)
    with pytest.raises(
        CifarBenchError, match="the MLPClassifier its hyperparameters describe does not fit its weights"
    ):
        load_model(find_run(run))  # evaluate's and predict's way in
    with pytest.raises(
        CifarBenchError, match="the MLPClassifier its hyperparameters describe does not fit its weights"
    ):
        read_checkpoint(path)  # fit's and test's --ckpt_path, before Lightning builds from them
    assert max(sizes, default=0) < 10**6, f"a Linear layer of {max(sizes):,} weights was allocated"


def test_a_hyperparameter_listing_more_layers_than_the_checkpoint_has_weights_is_refused_before_building(
    trained_mlp, tmp_path, monkeypatch
):
    run = copy_run(trained_mlp, tmp_path / "logs")
    sizes = real_linear_layers(monkeypatch)
    with pytest.raises(CifarBenchError, match="hyperparameter hidden lists 1,000,000 entries for 6 weights"):
        read_checkpoint(with_hyperparameters(run, hidden=[8] * 1_000_000))
    assert sizes == []


def without_hidden(run: Path) -> Path:
    path = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    del checkpoint["hyper_parameters"]["hidden"]
    torch.save(checkpoint, path)
    return path


def with_infinite_bias(run: Path) -> Path:
    path = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["state_dict"]["net.layers.4.bias"].fill_(float("inf"))
    torch.save(checkpoint, path)
    return path


RESUMED = {
    "last: of other model settings than the config's": (
        lambda run: "last",
        "does not fit this MLPClassifier (it differs at net.layers.1",
    ),
    "last: non-finite weights": (
        lambda run: (with_infinite_bias(run), "last")[1],
        "non-finite weights (NaN or infinity in net.layers.4.bias)",
    ),
    "a file naming no width, resumed with the config's": (
        lambda run: str(without_hidden(run)),
        "the MLPClassifier its hyperparameters describe does not fit its weights (they differ at net.layers.1",
    ),
}


@pytest.mark.parametrize("ckpt_path, reason", RESUMED.values(), ids=RESUMED.keys())
def test_a_resumed_checkpoint_is_checked_against_the_model_the_config_builds_before_lightning_loads_it(
    trained_mlp, imbalanced_data, tmp_path, capsys, ckpt_path, reason
):
    """``--ckpt_path last`` is loaded into the model the config builds (here with other hidden widths than the
    run's), a named file into that model with the file's own hyperparameters over the config's settings: each
    a clear error before Lightning builds or loads anything, and nothing written."""
    run = copy_run(trained_mlp, tmp_path / "logs")
    words = ("--ckpt_path", ckpt_path(run), "--model.hidden", "[7,5]", "--trainer.max_epochs", "3")
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(cli_args("fit", "mlp", imbalanced_data, tmp_path / "logs", *words))
    assert exit_info.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert reason in line
    assert snapshot(tmp_path) == before


def with_a_weight_on_meta(run: Path) -> Path:
    path = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["state_dict"]["net.layers.4.bias"] = checkpoint["state_dict"]["net.layers.4.bias"].to("meta")
    torch.save(checkpoint, path)
    return path


META_ENTRIES = {
    "fit --ckpt_path last": lambda run, data, logs: cli_args("fit", "mlp", data, logs, "--ckpt_path", "last"),
    "fit --ckpt_path FILE": lambda run, data, logs: cli_args(
        "fit", "mlp", data, logs.parent / "new_logs", "--ckpt_path", str(run / "checkpoints" / "last.ckpt")
    ),
    "evaluate": lambda run, data, logs: ["evaluate", "--ckpt", str(run)],
    "predict": lambda run, data, logs: ["predict", "--ckpt", str(run)],
}


@pytest.mark.parametrize("command", META_ENTRIES.values(), ids=META_ENTRIES.keys())
def test_a_checkpoint_holding_a_weight_without_data_is_one_error_line_at_every_entry(
    trained_mlp, imbalanced_data, tmp_path, capsys, command
):
    """A weight saved from the ``meta`` device loads as a tensor without data: the check of the weights' values
    (``Tensor.item() cannot be called on meta tensors``) was a traceback."""
    run = copy_run(trained_mlp, tmp_path / "logs")
    path = with_a_weight_on_meta(run)
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(command(run, imbalanced_data, tmp_path / "logs"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert f"{path} holds net.layers.4.bias as a tensor without its data" in line and "on meta" in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("change", ["rewritten in place", "renamed over it"])
def test_a_checkpoint_changed_between_its_check_and_its_load_is_not_what_predict_loads(
    trained_mlp, tmp_path, monkeypatch, change
):
    """evaluate and predict check a checkpoint, then load the model from it: its tensors were mapped from the
    file, so one rewritten in place once the check had passed (finite weights made NaN) gave the model the
    rewritten weights, unchecked. The file is read once, into memory, and checked and loaded from those bytes.
    (One renamed over it was already harmless: a mapping keeps the file it was made of.)"""
    run = copy_run(trained_mlp, tmp_path / "logs")
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    torch.save(checkpoint, last)  # saved as the poisoned copy is, so that the two are laid out alike
    for tensor in checkpoint["state_dict"].values():
        tensor.fill_(float("nan"))
    poisoned = tmp_path / "poisoned" / "last.ckpt"  # torch.save names the archive's folder by the file's
    poisoned.parent.mkdir()
    torch.save(checkpoint, poisoned)
    assert poisoned.stat().st_size == last.stat().st_size  # the same layout: only the tensors' bytes differ
    checked_then_built = runs.build_model

    def change_then_build(*arguments, **keywords):
        if change == "rewritten in place":
            with open(last, "r+b") as handle:
                handle.write(poisoned.read_bytes())
        else:
            os.replace(poisoned, last)
        return checked_then_built(*arguments, **keywords)

    monkeypatch.setattr(runs, "build_model", change_then_build)
    main(["predict", "--ckpt", str(run), "--out", str(tmp_path / "predictions.csv")])
    with open(tmp_path / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    probabilities = [float(value) for row in rows for key, value in row.items() if key.startswith("p_")]
    assert rows and probabilities and all(math.isfinite(p) for p in probabilities)


@pytest.mark.parametrize("ckpt", ["FILE", "last"])
def test_a_checkpoint_swapped_between_its_check_and_lightnings_load_is_not_what_fit_resumes_from(
    trained_mlp, imbalanced_data, tmp_path, monkeypatch, ckpt
):
    """``fit --ckpt_path`` checks the checkpoint, then LightningCLI read the file again for its hyperparameters and
    the Trainer again to restore it: one renamed over it once the check had passed (its weights NaN) was what the
    fit resumed from, unchecked. Lightning is handed the checked dict itself (``AtomicCheckpointIO``), so the fit
    resumes from the weights checked and trains on with finite ones."""
    run = copy_run(trained_mlp, tmp_path / "logs")
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    for tensor in checkpoint["state_dict"].values():
        tensor.fill_(float("nan"))
    poisoned = tmp_path / "poisoned.ckpt"
    torch.save(checkpoint, poisoned)
    checked = lightning_cli.read_checkpoint

    def check_then_swap(*arguments, **keywords):
        result = checked(*arguments, **keywords)
        os.replace(poisoned, last)
        return result

    monkeypatch.setattr(lightning_cli, "read_checkpoint", check_then_swap)
    logs = tmp_path / ("new_logs" if ckpt == "FILE" else "logs")
    main(cli_args("fit", "mlp", imbalanced_data, logs, "--ckpt_path", str(last) if ckpt == "FILE" else "last",
                  "--trainer.max_epochs", "3", "--trainer.precision", "32-true",
                  "--trainer.enable_progress_bar", "false"))  # fmt: skip
    assert not poisoned.exists(), "the checkpoint was never swapped"
    resumed = torch.load(logs / "mlp" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 2 and resumed["global_step"] > checkpoint["global_step"]
    assert all(torch.isfinite(weight).all() for weight in resumed["state_dict"].values())


def test_a_checked_checkpoint_without_the_loader_that_takes_it_is_one_error_line(
    trained_mlp, imbalanced_data, tmp_path, capsys
):
    """Another checkpoint IO plugin would read the file again, unchecked: refused before anything is written."""
    run = copy_run(trained_mlp, tmp_path / "handed_over")
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(cli_args("fit", "mlp", imbalanced_data, tmp_path / "logs", "--ckpt_path",
                      str(run / "checkpoints" / "last.ckpt"), "--trainer.plugins", "null"))  # fmt: skip
    assert exit_info.value.code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "is loaded by cifar_bench.training.checkpoint_io.AtomicCheckpointIO only" in line
    assert snapshot(tmp_path) == before
