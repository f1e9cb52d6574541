"""Today's user-visible contract, frozen before issue 32 moves every module: golden files, file schemas and
the command line. Everything goes through the command line (``cifar_bench.cli.main``, in this process)
and the files it writes; nothing here imports a module of the package by its path, so a move that keeps
behaviour keeps these tests green.

- golden: ``cifar-bench compare results --pair "[A,B]"`` (the pair comparison_pair.json names) and ``cifar-bench report
  results --data_dir data`` reproduce the committed ``results/comparison.*`` and ``results/report.*``;
- schemas: the keys and value types of ``metrics.json``, ``environment.json`` and ``predictions.npz``, as
  literals below, for the committed runs and for files written today by a tiny run;
- the command line: every command's ``--help`` and its options; bad input beyond tests/contract/test_bad_input.py's
  table (which stays the one place for it: the few cases below are the ones it lacks).

The committed ``results/`` is never written: compare writes to ``--out``, the report to a copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from conftest import REPO, snapshot

from cifar_bench.cli import main

RESULTS = REPO / "results"
CIFAR10_DIR = os.environ.get("CIFAR10_DIR")
NO_DATA = "real-data test: set CIFAR10_DIR to a folder holding CIFAR-10 or its archive"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# --- compare: results/comparison.md, .csv and comparison_pair.json ------------------------------------

# How the committed comparison was made: with the pair its comparison_pair.json names, if it has one
# (docs/results.md gives the command).
PAIR_FILE = RESULTS / "comparison_pair.json"
PAIR_ARGS = ["--pair", "[{first},{second}]".format_map(json.loads(PAIR_FILE.read_text()))] if PAIR_FILE.exists() else []
COMPARISON_FILES = ("comparison.md", "comparison.csv", *(("comparison_pair.json",) if PAIR_ARGS else ()))


@pytest.fixture(scope="module")
def results_untouched():
    """compare reads the committed results/ in place: nothing in it may change."""
    before = snapshot(RESULTS)
    yield
    assert snapshot(RESULTS) == before, "compare wrote into the committed results/"


def compared(out: Path) -> dict[str, bytes]:
    main(["compare", str(RESULTS), *PAIR_ARGS, "--out", str(out)])
    assert sorted(path.name for path in out.iterdir()) == sorted(COMPARISON_FILES)
    return {name: (out / name).read_bytes() for name in COMPARISON_FILES}


def test_compare_reproduces_the_committed_comparison_byte_for_byte(results_untouched, tmp_path):
    # float64 arithmetic on the committed metrics.json and predictions.npz, intervals and McNemar's p from
    # scipy.stats; comparison_pair.json names each run by its place in results/, not by the absolute path its
    # metrics.json recorded.
    produced = compared(tmp_path)
    for name in COMPARISON_FILES:
        assert produced[name] == (RESULTS / name).read_bytes(), f"{name} differs from the committed one"


# --- report: results/report.md, report.html, report_files/ --------------------------------------------

REPORT_OUTPUTS = ("report.md", "report.html", "report_files")
DATA_CHAPTER = "data"  # the anchor of the one chapter that reads CIFAR-10 itself
MARKDOWN_CHAPTER = r'\n<a id="([\w-]+)"></a>\n'
HTML_CHAPTER = r'<h2 id="([\w-]+)">'
PNG_DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def report_in_copy(workspace: Path, *extra: str) -> Path:
    """``cifar-bench report results EXTRA`` run as it was for the committed report: from the folder above
    ``results/``, with relative paths, which the report quotes. On a copy of results/ (about 11 MB) without
    the committed report: the report writes into the folder it reads."""
    shutil.copytree(RESULTS, workspace / "results", ignore=shutil.ignore_patterns(*REPORT_OUTPUTS))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workspace)
        main(["report", "results", *extra])
    return workspace / "results"


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    """The report without the data (``report results``): every chapter but the data's is the committed one's."""
    return report_in_copy(tmp_path_factory.mktemp("report"))


def link_official_copy(data: Path) -> None:
    """``data/`` holding CIFAR10_DIR's extracted copy (linked), else links to its archives, which the report
    unpacks into ``data/``: CIFAR10_DIR itself is never written."""
    source = Path(CIFAR10_DIR).expanduser().resolve()
    data.mkdir()
    for name in ("cifar-10-batches-bin", "cifar-10-batches-py"):
        folder = source if source.name == name else source / name
        if folder.is_dir():
            (data / name).symlink_to(folder)
            return
    archives = sorted(source.glob("cifar-10-*.tar*"))
    assert archives, f"CIFAR10_DIR={CIFAR10_DIR} holds neither an extracted copy nor an official archive"
    for archive in archives:
        (data / archive.name).symlink_to(archive.resolve())


@pytest.fixture(scope="module")
def reported_with_data(tmp_path_factory) -> Path:
    """``report results --data_dir data``, the committed report's command, CIFAR10_DIR's copy as ``data``."""
    workspace = tmp_path_factory.mktemp("report_with_data")
    link_official_copy(workspace / "data")
    return report_in_copy(workspace, "--data_dir", "data")


def chapters(text: str, anchor: str) -> dict[str, str]:
    """A report split at its chapters' anchors (``anchor``: a regex whose group is the anchor's name)."""
    parts = re.split(anchor, text)
    return {"": parts[0], **{name: body for name, body in zip(parts[1::2], parts[2::2])}}


def normalised(text: str) -> str:
    """The report's text with what legitimately differs by machine made the same:
    - which official version the data was read from (CIFAR10_DIR may hold the python version; the
      committed report read the binary one): the folder's name only, every count is the same;
    - in the HTML, the figures' bytes (PNG data URIs): the figures are checked by name and size below."""
    text = re.sub(r"cifar-10-batches-(bin|py)", "cifar-10-batches-VERSION", text)
    return PNG_DATA_URI.sub("data:image/png;base64,FIGURE", text)


@pytest.mark.parametrize("name", ["report.md", "report.html"])
def test_report_reproduces_the_committed_one_outside_the_data_chapter(reported, name):
    anchor = MARKDOWN_CHAPTER if name == "report.md" else HTML_CHAPTER
    produced = chapters(normalised((reported / name).read_text()), anchor)
    committed = chapters(normalised((RESULTS / name).read_text()), anchor)
    assert list(produced) == list(committed)
    for chapter in committed:
        if chapter != DATA_CHAPTER:
            assert produced[chapter] == committed[chapter], f"chapter {chapter or '(head)'} of {name} differs"
    # Without --data_dir the data chapter says so, and gives the counts the runs were evaluated on.
    assert "No data folder was given" in produced[DATA_CHAPTER]
    assert "the dataset analysis is left out." in produced[DATA_CHAPTER]


@pytest.mark.slow  # 10 to 35 s: the whole report again, with the dataset read (and unpacked from an archive)
@pytest.mark.real_data
@pytest.mark.skipif(not CIFAR10_DIR, reason=NO_DATA)
def test_report_with_the_data_reproduces_the_committed_one_whole(reported_with_data):
    produced = {name: (reported_with_data / name).read_text() for name in ("report.md", "report.html")}
    # report.md byte for byte from the binary version, as the committed one was made (it names no absolute
    # path: the VGG16 weights file in the recipe tables by its name, runs by their places in results/).
    if "Read from data/cifar-10-batches-bin:" in produced["report.md"]:
        assert (reported_with_data / "report.md").read_bytes() == (RESULTS / "report.md").read_bytes()
    for name, text in produced.items():
        assert normalised(text) == normalised((RESULTS / name).read_text()), f"{name} differs"
    samples = "report_files/data_samples.png"
    assert png_size((reported_with_data / samples).read_bytes()) == png_size((RESULTS / samples).read_bytes())


def test_the_committed_comparison_and_report_name_no_machine_local_path():
    """Runs by their places in results/, a weights file by its name and digest: never a folder of the machine
    that made them (older metrics.json files that recorded one stay as evidence; readers do not show it)."""
    for name in (*COMPARISON_FILES, "report.md", "report.html"):
        text = normalised((RESULTS / name).read_text())
        assert not re.findall(r"(?<![\w.])/(?:work|home|tmp|root|Users)/\S*", text), name


def png_size(content: bytes) -> tuple[int, int]:
    assert content[:8] == b"\x89PNG\r\n\x1a\n" and content[12:16] == b"IHDR"
    return struct.unpack(">II", content[16:24])


def test_report_figures_are_the_committed_ones_by_name_and_pixel_size(reported):
    """The figures' names (linked from report.md) and sizes in pixels, but the data chapter's sample grid (see
    the test above). Their bytes depend on the renderer (matplotlib, freetype, zlib versions) and are not
    compared (today, on the machine kind the committed report was made on, they are identical too)."""
    committed = {path.name: png_size(path.read_bytes()) for path in (RESULTS / "report_files").iterdir()}
    committed.pop("data_samples.png")
    produced = {path.name: png_size(path.read_bytes()) for path in (reported / "report_files").iterdir()}
    assert produced == committed
    linked = set(re.findall(r"\]\(report_files/([\w.]+)\)", (reported / "report.md").read_text()))
    assert linked == set(produced)


# --- schemas of the files a run and its evaluation write ----------------------------------------------

NONE = type(None)
# A schema is a literal: a dict (exactly these keys, each value of its schema), a one-element list (a list
# of values of that schema), a type or a tuple of types (the JSON value's exact type; bool is not int).
PER_CLASS = {"correct": int, "support": int, "accuracy": float, "precision": float, "recall": float, "f1": float}
AVERAGES = {"precision": float, "recall": float, "f1": float}
# A reliability bin without images has no accuracy nor confidence.
RELIABILITY_BIN = {
    "lower": float,
    "upper": float,
    "images": int,
    "accuracy": (float, NONE),
    "confidence": (float, NONE),
}
SPLIT = {
    "accuracy": float,
    "correct": int,
    "images": int,
    "per_class": {name: PER_CLASS for name in CLASS_NAMES},
    "macro_avg": AVERAGES,
    "weighted_avg": AVERAGES,
    "confusion_matrix": [[int]],
    "top3_accuracy": float,
    "ece": float,
    "reliability": [RELIABILITY_BIN],
}  # `evaluate --tta` adds tta_accuracy, tta_top3_accuracy, tta_ece (floats); no committed run has them
CURVE = {"epoch": [int], "value": [float]}


# The feature store a VGG16 run read (environment.json's sessions, carried into metrics.json): its build once.
STORE = {"digest": str, "views": int, "build_s": (float, NONE)}


class Added(NamedTuple):
    """A key added to a file after some committed ones were written: those may lack it; files written today have it."""

    kind: object


METRICS_SCHEMA = {
    "model": str,
    "model_class": str,
    "run": str,
    "checkpoint": str,
    "checkpoint_epoch": (int, NONE),
    "checkpoint_global_step": int,
    "seed": (int, NONE),
    "transform_profile": str,
    "weight_layers": int,
    "trainable_params": int,
    "total_params": int,
    "study_trainable_params": Added(int),  # as the study counts them (VGG16: fc6 unfolded)
    "study_total_params": Added(int),
    "weights": Added((dict, NONE)),  # the environment.json's record (WEIGHTS below); None: a model without one
    "precision": str,
    "data_dir": str,
    "epochs_trained": (int, NONE),  # None: no epoch-level curves in the event files
    "training_time_s": (float, NONE),  # None: no readable environment.json
    "feature_store_s": Added((float, NONE)),  # None: not recorded (runs before it was)
    "feature_store": Added((STORE, NONE)),  # the store the run read; None: a model without one
    "curves": {tag: CURVE for tag in ("train/loss", "train/acc", "val/loss", "val/acc")},
    "class_names": [str],
    "splits": {"train": SPLIT, "test": SPLIT},
}


# The weights a VGG16 run started from (environment.json, carried into metrics.json).
WEIGHTS = {
    "file": (str, NONE),
    "sha256": (str, NONE),
    "pretrained_layers": [str],
    "random_layers": [str],
    "trained_layers": [str],
}
SESSION = {
    "started": float,
    "commit": (str, NONE),  # None: the code is not in a git checkout
    "wall_s": float,
    "epochs_done": int,
    "load_average_1min_at_end": float,
    "cpu_s": Added(float),
    "interrupted": (str, NONE),
    "feature_store_s": Added(float),
    "feature_store": Added((STORE, NONE)),
}
ENVIRONMENT_SCHEMA = {
    "sessions": [SESSION],
    "commit": (str, NONE),
    "machine": {
        "cpu": str,
        "cores": (int, NONE),  # os.cpu_count()
        "torch_threads": int,
        "cpu_capability": str,
        "huge_pages": (str, NONE),  # THP_MEM_ALLOC_ENABLE, set by the command line unless the user did
        "gpu": (str, NONE),  # None on a machine without CUDA, as every committed run's
        "python": str,
        "torch": str,
        "torchvision": str,
        "lightning": str,
        "torchmetrics": str,
        "platform": str,
    },
    "precision": str,
    "wall_s": float,
    "weights": Added(WEIGHTS),  # only a model started from pretrained weights records them
}
# predictions.npz: array name -> (dtype, shape), "train"/"test" standing for that split's image count.
PREDICTIONS_SCHEMA = {
    "test_logits": ("float16", ("test", 10)),
    "train_labels": ("uint8", ("train",)),
    "train_predictions": ("uint8", ("train",)),
    "test_labels": ("uint8", ("test",)),
    "test_predictions": ("uint8", ("test",)),
}
COMMITTED_RUNS = (
    "cnn/seed0",
    "cnn/seed1",
    "cnn/seed2",
    "cnn_bn_do/seed0",
    "cnn_bn_do/seed1",
    "cnn_bn_do/seed2",
    "mlp/seed0",
    "mlp/seed1",
    "mlp/seed2",
    "mlp/seed3",
    "mlp/seed4",
    "vgg16_last2/seed0",
    "vgg16_last2/seed1",
    "vgg16_last2/seed2",
    "vgg16_last3/seed0",
    "vgg16_last3/seed1",
    "vgg16_last3/seed2",
    "vgg16_last5/seed0",
    "vgg16_last5/seed1",
    "vgg16_last5/seed2",
)


def schema_mismatches(value, schema, where: str = "") -> set[str]:
    """Where ``value`` departs from ``schema``: keys missing (but those ``Added`` since) or not in it, values of
    another type."""
    if isinstance(schema, Added):
        return schema_mismatches(value, schema.kind, where)
    if isinstance(schema, dict):
        if type(value) is not dict:
            return {f"{where or '/'}: {type(value).__name__}, not an object"}
        problems = {
            f"{where}/{key}: missing" for key in schema.keys() - value.keys() if not isinstance(schema[key], Added)
        }
        problems |= {f"{where}/{key}: not in the schema" for key in value.keys() - schema.keys()}
        for key in schema.keys() & value.keys():
            problems |= schema_mismatches(value[key], schema[key], f"{where}/{key}")
        return problems
    if isinstance(schema, list):
        if type(value) is not list:
            return {f"{where}: {type(value).__name__}, not a list"}
        return set().union(*(schema_mismatches(item, schema[0], f"{where}[]") for item in value))
    allowed = schema if isinstance(schema, tuple) else (schema,)
    nested = [kind for kind in allowed if isinstance(kind, dict)]
    if nested and value is not None:  # an object of that schema, or null
        return schema_mismatches(value, nested[0], where)
    if type(value) in allowed:
        return set()
    return {f"{where}: {type(value).__name__}, not {' or '.join(kind.__name__ for kind in allowed)}"}


def predictions_mismatches(path: Path) -> tuple[set[str], dict[str, int]]:
    """How predictions.npz departs from PREDICTIONS_SCHEMA (it must load without pickle), and its image counts."""
    with np.load(path, allow_pickle=False) as content:
        arrays = {name: content[name] for name in content.files}
    problems = {f"{name}: missing" for name in PREDICTIONS_SCHEMA.keys() - arrays.keys()}
    problems |= {f"{name}: not in the schema" for name in arrays.keys() - PREDICTIONS_SCHEMA.keys()}
    counts = {split: len(arrays[f"{split}_labels"]) for split in ("train", "test") if f"{split}_labels" in arrays}
    for name in PREDICTIONS_SCHEMA.keys() & arrays.keys():
        dtype, shape = PREDICTIONS_SCHEMA[name]
        expected = tuple(counts.get(size, size) for size in shape)
        if (str(arrays[name].dtype), arrays[name].shape) != (dtype, expected):
            problems.add(f"{name}: {arrays[name].dtype} {arrays[name].shape}, not {dtype} {expected}")
    return problems, counts


def test_the_committed_runs_are_the_listed_ones():
    found = sorted(str(path.parent.parent.relative_to(RESULTS)) for path in RESULTS.glob("*/*/evaluation/metrics.json"))
    assert found == sorted(COMMITTED_RUNS)


@pytest.mark.parametrize("run", COMMITTED_RUNS)
def test_committed_files_have_the_frozen_schemas(run):
    folder = RESULTS / run
    assert schema_mismatches(json.loads((folder / "evaluation" / "metrics.json").read_text()), METRICS_SCHEMA) == set()
    assert schema_mismatches(json.loads((folder / "environment.json").read_text()), ENVIRONMENT_SCHEMA) == set()
    problems, counts = predictions_mismatches(folder / "evaluation" / "predictions.npz")
    # The training images evaluated: all 50,000 in runs evaluated before evaluate kept to the images trained on,
    # those (45,000 beside the 5,000 held out) since; metrics.json says which.
    trained_on = json.loads((folder / "evaluation" / "metrics.json").read_text())["splits"]["train"]["images"]
    assert problems == set() and counts == {"train": trained_on, "test": 10000}
    assert trained_on in (45000, 50000)


@pytest.fixture(scope="module")
def fresh_evaluation(trained_mlp, tmp_path_factory) -> Path:
    """The session's tiny MLP run (trained today through the command line) evaluated today, into a folder of
    its own (the shared run is left as it is)."""
    out = tmp_path_factory.mktemp("fresh_evaluation")
    main(["evaluate", "--ckpt", str(trained_mlp), "--batch_size", "64", "--out", str(out)])
    return out


def test_files_written_today_have_the_frozen_schemas(trained_mlp, fresh_evaluation):
    metrics = json.loads((fresh_evaluation / "metrics.json").read_text())
    assert schema_mismatches(metrics, METRICS_SCHEMA) == set()
    # The optional fields are filled in a run trained and evaluated today (no None where a value is known).
    assert all(metrics[key] is not None for key in ("checkpoint_epoch", "seed", "epochs_trained", "training_time_s"))
    environment = json.loads((trained_mlp / "environment.json").read_text())
    assert schema_mismatches(environment, ENVIRONMENT_SCHEMA) == set()
    # What was added since the committed files were written is there: an MLP spends nothing on a feature store.
    assert metrics["feature_store_s"] == 0.0 and [s["feature_store_s"] for s in environment["sessions"]] == [0.0]
    # the CPU time the fit got: some, and no more than its cores could give over its wall time
    assert all(0 < s["cpu_s"] <= s["wall_s"] * os.cpu_count() + 1 for s in environment["sessions"])
    # An MLP starts from no pretrained weights, and the study counts its parameters as built.
    assert metrics["weights"] is None and "weights" not in environment
    assert (metrics["study_trainable_params"], metrics["study_total_params"]) == (
        metrics["trainable_params"],
        metrics["total_params"],
    )
    # No machine-local path: the run and checkpoint by their places, the data folder by its name (under tmp).
    assert (metrics["run"], metrics["checkpoint"]) == ("mlp/version_0", "checkpoints/last.ckpt")
    assert not Path(metrics["data_dir"]).is_absolute()
    assert [session["interrupted"] for session in environment["sessions"]] == [None]
    problems, counts = predictions_mismatches(fresh_evaluation / "predictions.npz")
    # The tiny copy: 5 batches of 40 (the run trained on 180 of them, 20 held out for validation), a test batch of 40.
    assert problems == set() and counts == {"train": 180, "test": 40}


# --- the command line ---------------------------------------------------------------------------------

# Every command, with the options its --help lists (for Lightning's three: those this package defines or
# documents; Lightning's own Trainer options follow Lightning's version) and its positional arguments.
TRAINER_OPTIONS = {
    "--config",
    "--seed_everything",
    "--ckpt_path",
    "--model",
    "--data.data_dir",
    "--data.download",
    "--data.val_size",
    "--data.train_size",
    "--data.batch_size",
    "--data.eval_batch_size",
    "--data.seed",
    "--trainer.max_epochs",
    "--trainer.precision",
    "--trainer.accelerator",
    "--trainer.devices",
    "--trainer.default_root_dir",
    "--trainer.logger",
    "--optimizer",
    "--lr_scheduler",
}
# Every function command also takes its options from a YAML file (jsonargparse's --config, --print_config).
CONFIG_OPTIONS = {"--config", "--print_config"}
FUNCTION_OPTIONS = {  # command: (positional arguments, options), as its --help names them
    "analyze": ("", "--data_dir --download --out --samples_per_class"),
    "evaluate": ("", "--ckpt --data_dir --download --batch_size --out --accelerator --precision --tta"),
    "predict": ("INPUTS", "--ckpt --inputs --out --data_dir --download --batch_size --device --show"),
    "compare": ("directory", "--out --pair --set_aside"),
    "study": ("", "--models --seeds --configs_dir --save_dir --data_dir --vgg_weights --results --fit_args"),
    "sweep": (
        "",
        "--model --trials --timeout --storage --study_name --sampler_seed --pruner --space --out --fit_args",
    ),
    "report": ("directory", "--data_dir"),
}
COMMANDS = ("fit", "validate", "test", *FUNCTION_OPTIONS)


def help_of(command: str, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "120")  # the help's wrapping follows the terminal
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def listed(text: str, section: str, pattern: str) -> set[str]:
    """The names of the entries (lines indented by two spaces) of one section of a --help."""
    lines = text.split(f"\n{section}:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return {match.group(1) for line in lines if (match := re.match(rf"  (?:-\w(?: \w+)?, )?({pattern})", line))}


def test_the_commands_are_the_listed_ones(capsys):
    with pytest.raises(SystemExit) as stop:
        main([])
    assert stop.value.code == 2
    assert capsys.readouterr().err == f"error: no command given: choose one of {', '.join(COMMANDS)}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_a_help_that_exits_0_and_lists_its_options(command, capsys, monkeypatch):
    text = help_of(command, capsys, monkeypatch)
    assert text.startswith("usage: cifar-bench ") and re.search(rf"\b{command}\b", text.splitlines()[0])
    options = set(re.findall(r"^  (?:-\w(?: \w+)?, )?(--[\w.]+)", text, re.MULTILINE))  # each entry's first line
    if command in FUNCTION_OPTIONS:
        positional, expected = (words.split() for words in FUNCTION_OPTIONS[command])
        assert options == {"--help", *CONFIG_OPTIONS, *expected}
        assert (listed(text, "positional arguments", r"\w+") if positional else set()) == set(positional)
    else:
        assert TRAINER_OPTIONS <= options, sorted(TRAINER_OPTIONS - options)


# Bad input: tests/contract/test_bad_input.py holds the table (one `error:` line, exit status 2, nothing written).
# These are the cases it lacks: the function commands' own parsing and their missing folders.
BAD_INPUT = [
    ("compare: missing folder", ["compare", "nowhere"], "no folder nowhere: pass the folder that holds the runs"),
    ("report: missing folder", ["report", "nowhere"], "no folder nowhere: pass the folder that holds the evaluated"),
    ("report: no folder named", ["report"], "the following arguments are required: directory"),
    ("evaluate: no --ckpt", ["evaluate"], "the following arguments are required: ckpt"),
    ("report: misspelled option", ["report", ".", "--datadir", "data"], "unrecognized arguments: --datadir data"),
    ("compare: misspelled option", ["compare", ".", "--pairs", "[a,b]"], "unrecognized arguments: --pairs [a,b]"),
]


@pytest.mark.parametrize("argv, fragment", [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_bad_input_to_the_function_commands_is_one_error_line_exit_code_2_and_writes_nothing(
    argv, fragment, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("x\n")
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and fragment in errors[0], errors
    assert snapshot(tmp_path) == before
