"""Every bad input through the command line: one `error:` line, exit code 2, no traceback, and the
whole tree around it unchanged (no file written, replaced, added or removed; no folder created).

One table: a case is an id, the command line (built from a prepared workspace) and a fragment the
error line must contain. Adding a case is one line.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, cli_args, snapshot, write_archive, write_binary_version

from cifar_bench.cli import main
from cifar_bench.configs import model_names

IMPORT_MARKER = "IMPORTED"
PLANTED_MODULE = f"""from pathlib import Path
Path(__file__).with_name("{IMPORT_MARKER}").touch()

class Net:
    pass
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, trained_mlp, imbalanced_data) -> Path:
    """Good data, broken data of every kind, a real checkpoint and a few broken files, side by side."""
    root = tmp_path_factory.mktemp("workspace")
    write_binary_version(root / "data")
    (root / "a_file").write_text("not a folder\n")
    (root / "empty").mkdir()
    (root / "typo.yaml").write_text("data:\n  batchsize: 8\n")

    truncated = write_binary_version(root / "truncated")
    (truncated / "data_batch_2.bin").write_bytes((truncated / "data_batch_2.bin").read_bytes()[:-100])
    corrupt = write_binary_version(root / "corrupt")
    records = bytearray((corrupt / "test_batch.bin").read_bytes())
    records[0] = 200  # a label byte no CIFAR-10 class has
    (corrupt / "test_batch.bin").write_bytes(bytes(records))

    (root / "html").mkdir()
    (root / "html/cifar-10-binary.tar.gz").write_text("<html><body>404 Not Found</body></html>\n")
    escaping = tarfile.TarInfo("../evil.txt")
    escaping.size = 1
    symlink = tarfile.TarInfo("cifar-10-batches-bin/link")
    symlink.type, symlink.linkname = tarfile.SYMTYPE, "/etc/passwd"
    for name, info in {"escaping": escaping, "symlink": symlink}.items():
        (root / name).mkdir()
        archive = write_archive(write_binary_version(root / f"{name}-source"), root / name / "cifar-10-binary.tar")
        with tarfile.open(archive, "a") as tar:
            tar.addfile(info, io.BytesIO(b"x") if info.isfile() else None)
    (root / "archived").mkdir()
    write_archive(write_binary_version(root / "archived-source"), root / "archived" / "cifar-10-binary.tar.gz")

    (root / "planted").mkdir()
    (root / "planted" / "planted_module.py").write_text(PLANTED_MODULE)

    run = trained_mlp  # read only: the runs below are copies
    (root / "good.ckpt").write_bytes((run / "checkpoints" / "last.ckpt").read_bytes())
    (root / "truncated.ckpt").write_bytes((root / "good.ckpt").read_bytes()[:4096])
    with zipfile.ZipFile(root / "good.ckpt") as good_zip, zipfile.ZipFile(root / "malformed_pickle.ckpt", "w") as bad:
        for member in good_zip.infolist():  # a pickle that reads a memo entry never stored: torch lets KeyError out
            bad.writestr(member, b"\x80\x02h\x05." if member.filename.endswith("data.pkl") else good_zip.read(member))
    good = torch.load(root / "good.ckpt", map_location="cpu", weights_only=True)
    hyper_parameters = good["hyper_parameters"]
    checkpoints = {
        "foreign": {
            **good,
            "hyper_parameters": {**hyper_parameters, "_class_path": "someone_elses_project.models.Net"},
        },
        "planted": {**good, "hyper_parameters": {**hyper_parameters, "_class_path": "planted_module.Net"}},
        "malicious": {**good, "payload": RunsCode()},
        "list": [good["state_dict"]],
        "tensor_hparams": {**good, "hyper_parameters": torch.zeros(3)},
        "non_finite": {
            **good,
            "state_dict": {**good["state_dict"], "net.layers.4.bias": torch.full((256,), float("inf"))},
        },
        # 14 MB of weights whose hyperparameters describe a 461M-parameter MLP (1.8 GB), with and without its class
        "oversized": {**good, "hyper_parameters": {**hyper_parameters, "hidden": [20000, 20000]}},
        "huge_lr": {**good, "hyper_parameters": {**hyper_parameters, "lr": 10**400}},
        "oversized_unnamed": {
            **good,
            "hyper_parameters": {
                key: value
                for key, value in {**hyper_parameters, "hidden": [20000, 20000]}.items()
                if key != "_class_path"
            },
        },
    }
    for name, checkpoint in checkpoints.items():
        torch.save(checkpoint, root / f"{name}.ckpt")
        evaluable = shutil.copytree(
            run, root / "runs" / name / "version_0", ignore=shutil.ignore_patterns("*.ckpt", "evaluation")
        )
        shutil.copy(root / f"{name}.ckpt", evaluable / "checkpoints" / "last.ckpt")
    # Where `--ckpt_path last` is typed, LightningCLI reads a file named "last" in the current folder.
    shutil.copy(root / "planted.ckpt", root / "last")
    for name, data_dir in {"nowhere": root / "nowhere", "archived": root / "archived"}.items():
        trained_elsewhere = shutil.copytree(
            run, root / "runs" / f"data_{name}" / "version_0", ignore=shutil.ignore_patterns("evaluation")
        )
        config = trained_elsewhere / "config.yaml"
        config.write_text(
            config.read_text().replace(str(imbalanced_data), str(data_dir)).replace("download: false", "download: true")
        )
    shutil.copytree(run, root / "runs" / "good" / "version_0", ignore=shutil.ignore_patterns("evaluation"))
    for name, line in {"model_word": "model: abc", "trainer_list": "trainer: [1]", "data_list": "data: [1]"}.items():
        edited = shutil.copytree(
            run, root / "runs" / f"config_{name}" / "version_0", ignore=shutil.ignore_patterns("evaluation")
        )
        section = line.split(":")[0]
        config = yaml.safe_load((edited / "config.yaml").read_text())
        (edited / "config.yaml").write_text(yaml.safe_dump({**config, section: yaml.safe_load(line)[section]}))
    (root / "word_configs").mkdir()
    (root / "word_configs" / "mlp.yaml").write_text("model: abc\n")
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)}, root / "resnet.pth")
    return root


class RunsCode:
    """Unpickling this would create a file: proof that code ran."""

    def __reduce__(self):
        return (Path.touch, (Path("PWNED"),))


def fit(ws: Path, model: str = "mlp", data: str = "data", *extra: str, subcommand: str = "fit") -> list[str]:
    settings = ("--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false")
    return cli_args(subcommand, model, ws / data, ws / "new_logs", *settings, *extra, batch_size=16)


def vgg(ws: Path, *extra: str) -> list[str]:
    return fit(ws, "vgg16_last2", "data", "--model.weights", "none", *extra)


def with_checkpoint(ws: Path, checkpoint: str) -> list[str]:
    return fit(ws, "mlp", "data", "--ckpt_path", str(ws / checkpoint), subcommand="test")


def evaluate(ws: Path, run: str, *extra: str) -> list[str]:
    return ["evaluate", "--ckpt", str(ws / "runs" / run / "version_0"), *extra]


# Ranges are the constructors' jsonargparse types: the parser names the key, the type and its restriction.
BATCH_SIZE_RANGE = '"data.batch_size": {} does not conform to restriction v>0'
LR_RANGE = '"lr": {} does not conform to restriction v>0'
TRAINABLE_LAYERS_RANGE = '"trainable_layers": {} does not conform to restriction v>=1 and v<=16'

CASES = [
    ("unknown model class", lambda ws: fit(ws, "mlp", "data", "--model", "NoSuchModel"), "NoSuchModel"),
    ("unknown command", lambda ws: ["train", "mlp"], "unknown command 'train'"),
    ("misspelled option", lambda ws: fit(ws, "mlp", "data", "--data.batchsize", "8"), "unrecognized arguments"),
    (
        "misspelled key in a config file",
        lambda ws: fit(ws, "mlp", "data", "--config", str(ws / "typo.yaml")),
        "batchsize",
    ),
    ("missing config file", lambda ws: fit(ws, "mlp", "data", "--config", str(ws / "nope.yaml")), "nope.yaml"),
    (
        "unknown model named as the config",
        lambda ws: fit(ws, "mlp", "data", "--config", "resnet"),
        f"unknown model 'resnet': choose one of {', '.join(model_names())}",
    ),
    ("mistyped precision", lambda ws: fit(ws, "mlp", "data", "--trainer.precision", "17"), "trainer.precision"),
    (
        "mistyped option of the model class",
        lambda ws: fit(ws, "mlp", "data", "--model.lr", "abc"),
        "Parser key \"lr\": could not convert string to float: 'abc'",
    ),
    ("wrong type", lambda ws: fit(ws, "mlp", "data", "--data.batch_size", "abc"), "data.batch_size"),
    ("zero epochs", lambda ws: fit(ws, "mlp", "data", "--trainer.max_epochs", "0"), "max_epochs must be at least 1"),
    *(
        (f"trainer {option} {value}", lambda ws, o=option, v=value: fit(ws, "mlp", "data", f"--trainer.{o}", v), reason)
        for option, value, reason in (
            ("check_val_every_n_epoch", "0", "check_val_every_n_epoch must be at least 1 (got 0)"),
            ("val_check_interval", "0", "val_check_interval must be above 0 (got 0)"),
            ("limit_train_batches", "0", "limit_train_batches must be above 0 (got 0)"),
            ("max_steps", "0", "max_steps must be above 0 (got 0)"),
            ("accelerator", "foo", "the Trainer refuses these settings"),
            ("devices", "0", "the Trainer refuses these settings"),
        )
    ),
    (
        "negative epochs",
        lambda ws: fit(ws, "mlp", "data", "--trainer.max_epochs", "-3"),
        "max_epochs must be at least 1",
    ),
    ("zero batch size", lambda ws: fit(ws, "mlp", "data", "--data.batch_size", "0"), BATCH_SIZE_RANGE.format(0)),
    ("negative batch size", lambda ws: fit(ws, "mlp", "data", "--data.batch_size", "-4"), BATCH_SIZE_RANGE.format(-4)),
    ("zero learning rate", lambda ws: fit(ws, "mlp", "data", "--model.lr", "0"), LR_RANGE.format(0)),
    ("negative learning rate", lambda ws: fit(ws, "cnn", "data", "--model.lr", "-0.1"), LR_RANGE.format(-0.1)),
    (
        "dropout of 1",
        lambda ws: fit(ws, "mlp", "data", "--model.dropout", "1.0"),
        '"dropout": 1.0 does not conform to restriction v>=0.0 and v<1.0',
    ),
    (
        "negative val_size",
        lambda ws: fit(ws, "mlp", "data", "--data.val_size", "-1"),
        '"data.val_size": -1 does not conform to restriction v>=0',
    ),
    (
        "val_size leaving no training data",
        lambda ws: fit(ws, "mlp", "data", "--data.val_size", "50000"),
        "leaves no training images",
    ),
    ("trainable_layers 0", lambda ws: vgg(ws, "--model.trainable_layers", "0"), TRAINABLE_LAYERS_RANGE.format(0)),
    ("trainable_layers 17", lambda ws: vgg(ws, "--model.trainable_layers", "17"), TRAINABLE_LAYERS_RANGE.format(17)),
    ("data dir is a file", lambda ws: fit(ws, "mlp", "a_file"), "is a file, not a folder"),
    ("no data and download off", lambda ws: fit(ws, "mlp", "empty"), "download is off"),
    ("truncated batch", lambda ws: fit(ws, "mlp", "truncated/cifar-10-batches-bin"), "data_batch_2.bin is truncated"),
    ("label out of range", lambda ws: fit(ws, "mlp", "corrupt/cifar-10-batches-bin"), "label out of range"),
    ("archive that is an HTML page", lambda ws: fit(ws, "mlp", "html"), "not a readable tar archive"),
    ("archive member escaping the target", lambda ws: fit(ws, "mlp", "escaping"), "refusing to unpack"),
    ("archive with a symlink member", lambda ws: fit(ws, "mlp", "symlink"), "refusing to unpack"),
    ("checkpoint of another project's model", lambda ws: with_checkpoint(ws, "foreign.ckpt"), "someone_elses_project"),
    (
        "checkpoint naming an importable module",
        lambda ws: with_checkpoint(ws, "planted.ckpt"),
        "not of one of this package's models",
    ),
    (
        "checkpoint naming an importable module, resumed",
        lambda ws: fit(ws, "mlp", "data", "--ckpt_path", str(ws / "planted.ckpt")),
        "'planted_module.Net'",
    ),
    (
        "a planted file named like Lightning's 'last' checkpoint",
        lambda ws: fit(ws, "mlp", "data", "--ckpt_path", "last"),
        "but a file of that name in",
    ),
    ("checkpoint that runs code when unpickled", lambda ws: with_checkpoint(ws, "malicious.ckpt"), "refused to load"),
    ("checkpoint that is a list", lambda ws: with_checkpoint(ws, "list.ckpt"), "holds a list, not a checkpoint"),
    (
        "checkpoint whose hyper_parameters are a tensor",
        lambda ws: with_checkpoint(ws, "tensor_hparams.ckpt"),
        "holds a Tensor as hyper_parameters",
    ),
    ("truncated checkpoint", lambda ws: with_checkpoint(ws, "truncated.ckpt"), "truncated or not a checkpoint"),
    ("checkpoint with an lr past a float", lambda ws: with_checkpoint(ws, "huge_lr.ckpt"), "lr=1000000000"),
    ("evaluate: an lr past a float", lambda ws: evaluate(ws, "huge_lr"), "is out of range"),
    (
        "checkpoint whose pickle stream is malformed",
        lambda ws: with_checkpoint(ws, "malformed_pickle.ckpt"),
        "truncated or not a checkpoint",
    ),
    (
        "checkpoint with non-finite weights",
        lambda ws: with_checkpoint(ws, "non_finite.ckpt"),
        "non-finite weights (NaN or infinity in net.layers.4.bias)",
    ),
    (
        "predict: checkpoint naming an importable module",
        lambda ws: ["predict", "--ckpt", str(ws / "runs" / "planted" / "version_0")],
        "not of one of this package's models",
    ),
    ("missing checkpoint", lambda ws: with_checkpoint(ws, "missing.ckpt"), "does not exist"),
    (
        "evaluate: checkpoint naming an importable module",
        lambda ws: evaluate(ws, "planted"),
        "not of one of this package's models",
    ),
    ("evaluate: checkpoint that runs code when unpickled", lambda ws: evaluate(ws, "malicious"), "refused to load"),
    ("evaluate: checkpoint that is a list", lambda ws: evaluate(ws, "list"), "holds a list, not a checkpoint"),
    (
        "evaluate: checkpoint whose hyper_parameters are a tensor",
        lambda ws: evaluate(ws, "tensor_hparams"),
        "holds a Tensor as hyper_parameters",
    ),
    (
        "evaluate: non-finite weights",
        lambda ws: evaluate(ws, "non_finite"),
        "non-finite weights (NaN or infinity in net.layers.4.bias)",
    ),
    (
        "evaluate: a run trained on data since gone, download on",
        lambda ws: evaluate(ws, "data_nowhere"),
        "pass --data_dir",
    ),
    ("evaluate: a run trained on data left packed", lambda ws: evaluate(ws, "data_archived"), "pass --data_dir"),
    (
        "weights of another architecture",
        lambda ws: vgg(ws, "--model.weights", str(ws / "resnet.pth")),
        "not a torchvision VGG16 state dict",
    ),
    (
        "weights file that does not exist",
        lambda ws: vgg(ws, "--model.weights", str(ws / "nope.pth")),
        "neither a word ('imagenet', 'imagenet_conv', 'none') nor an existing file",
    ),
    (
        "checkpoint whose hyperparameters describe a 461M-parameter model",
        lambda ws: with_checkpoint(ws, "oversized.ckpt"),
        "the MLPClassifier its hyperparameters describe does not fit its weights",
    ),
    (
        "checkpoint whose hyperparameters describe a 461M-parameter model, resumed",
        lambda ws: fit(ws, "mlp", "data", "--ckpt_path", str(ws / "oversized.ckpt")),
        "the MLPClassifier its hyperparameters describe does not fit its weights",
    ),
    (
        "checkpoint naming no class, whose hyperparameters describe a 461M-parameter model",
        lambda ws: fit(ws, "mlp", "data", "--ckpt_path", str(ws / "oversized_unnamed.ckpt")),
        "the MLPClassifier its hyperparameters describe does not fit its weights",
    ),
    (
        "evaluate: checkpoint whose hyperparameters describe a 461M-parameter model",
        lambda ws: evaluate(ws, "oversized"),
        "the MLPClassifier its hyperparameters describe does not fit its weights",
    ),
    (
        "evaluate: a config.yaml whose model is a word",
        lambda ws: evaluate(ws, "config_model_word"),
        "holds a str as model",
    ),
    (
        "evaluate: a config.yaml whose trainer is a list",
        lambda ws: evaluate(ws, "config_trainer_list"),
        "holds a list as trainer",
    ),
    (
        "predict: a config.yaml whose data is a list",
        lambda ws: ["predict", "--ckpt", str(ws / "runs" / "config_data_list" / "version_0")],
        "holds a list as data",
    ),
    (
        "study: a model config whose model is a word",
        lambda ws: ["study", "--configs_dir", str(ws / "word_configs"), "--save_dir", str(ws / "study")],
        "word_configs/mlp.yaml holds a str as model, not its settings",
    ),
    ("evaluate: --out a file", lambda ws: evaluate(ws, "good", "--out", str(ws / "a_file")), "is a file, not a folder"),
    (
        "evaluate: --out under a file",
        lambda ws: evaluate(ws, "good", "--out", str(ws / "a_file" / "reports")),
        "which is not a folder",
    ),
    (
        "predict: --out a folder",
        lambda ws: ["predict", "--ckpt", str(ws / "runs" / "good" / "version_0"), "--out", str(ws / "empty")],
        "is a folder: name the file to write",
    ),
    (
        "predict: --out under a file",
        lambda ws: [
            "predict",
            "--ckpt",
            str(ws / "runs" / "good" / "version_0"),
            "--out",
            str(ws / "a_file" / "p.csv"),
        ],
        "which is not a folder",
    ),
    (
        "predict: the meta device",
        lambda ws: ["predict", "--ckpt", str(ws / "runs" / "good" / "version_0"), "--device", "meta"],
        "cannot use device 'meta': a meta device holds no data",
    ),
    (
        "compare: --out a file",
        lambda ws: ["compare", str(ws / "runs"), "--out", str(ws / "a_file")],
        "is a file, not a folder",
    ),
    *(
        (
            f"analyze: {samples} samples per class",
            lambda ws, samples=samples: ["analyze", "--data_dir", str(ws / "data"), "--samples_per_class", samples],
            f'"samples_per_class": {samples} does not conform to restriction v>=1 and v<=100',
        )
        for samples in ("-1", "500")
    ),
    (
        "analyze: --out under a file",
        lambda ws: ["analyze", "--data_dir", str(ws / "data"), "--out", str(ws / "a_file" / "analysis")],
        "which is not a folder",
    ),
    (
        "negative seed",
        lambda ws: fit(ws, "mlp", "data", "--seed_everything", "-1"),
        "--seed_everything -1 is out of range: a seed is a whole number from 0 to 4,294,967,295",
    ),
    (
        "seed above numpy's range",
        lambda ws: fit(ws, "mlp", "data", "--seed_everything", str(2**32)),
        "--seed_everything 4294967296 is out of range",
    ),
    (
        "data seed past torch's generator",
        lambda ws: fit(ws, "mlp", "data", "--data.seed", str(2**50)),
        '"data.seed": 1125899906842624 does not conform to restriction v>=0 and v<=4294967295',
    ),
    (
        "store seed past torch's generator",
        lambda ws: vgg(ws, "--model.store_seed", str(10**14)),
        '"store_seed": 100000000000000 does not conform to restriction v>=0 and v<=4294967295',
    ),
    (
        "study: --results is a file",
        lambda ws: ["study", "--models", "[mlp]", "--results", str(ws / "a_file"), "--save_dir", str(ws / "study")],
        "a_file is a file, not a folder",
    ),
    (
        "study: a negative seed",
        lambda ws: ["study", "--models", "[mlp]", "--seeds", "[-1]", "--save_dir", str(ws / "study")],
        '"seeds": -1 does not conform to restriction v>=0 and v<=4294967295',
    ),
    (
        "log dir under a file",
        lambda ws: fit(ws, "mlp", "data", "--trainer.logger.init_args.save_dir", str(ws / "a_file/logs")),
        "cannot write logs",
    ),
]


@pytest.mark.parametrize("argv, fragment", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_error_line_exit_code_2_and_leaves_the_whole_tree_unchanged(
    workspace, argv, fragment, capsys, monkeypatch
):
    monkeypatch.chdir(workspace)
    monkeypatch.syspath_prepend(workspace / "planted")
    before = snapshot(workspace)

    with pytest.raises(SystemExit) as exit_info:
        main(argv(workspace))

    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert fragment in errors[0] and "\x1b" not in errors[0]
    assert not (workspace / "planted" / IMPORT_MARKER).exists(), "a module named by a checkpoint was imported"
    assert not (workspace / "PWNED").exists(), "a pickled payload ran"
    assert snapshot(workspace) == before, "a file or folder was written, added or removed"


def test_make_train_with_an_unknown_model_lists_the_valid_names():
    result = subprocess.run(
        ["make", "-s", "train", "MODEL=resnet"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "unknown MODEL 'resnet'" in result.stderr
    for name in model_names():
        assert name in result.stderr


@pytest.mark.parametrize(
    "target, variable",
    [("evaluate", "CKPT"), ("train", "MODEL"), ("study", "SEEDS"), ("report", "DIR"), ("compare", "LOGS")],
)
def test_make_passes_each_value_as_one_word_and_never_runs_what_it_holds(tmp_path, target, variable):
    """Only ARGS is flags; a path with a space, a quote or a ';' in it is one argument, never a command."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "cifar-bench").write_text('#!/bin/sh\nfor word in "$@"; do echo "[$word]"; done\n')
    (fake / "cifar-bench").chmod(0o755)
    value = f'my run/it\'s"; touch {tmp_path}/PWNED; echo "'
    result = subprocess.run(
        ["make", "-s", target, f"{variable}={value}", f"BIN={fake}", "ARGS="], cwd=REPO, capture_output=True, text=True
    )
    assert not (tmp_path / "PWNED").exists()
    # one argument where the command gets it as it is (MODEL is refused as unknown; SEEDS becomes a list)
    arrived = f"[{value}]" if variable in ("CKPT", "DIR", "LOGS") else f"{tmp_path}/PWNED"
    assert arrived in result.stdout + result.stderr


def test_make_passes_a_path_with_a_space_and_no_images_as_they_are(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "cifar-bench").write_text('#!/bin/sh\nfor word in "$@"; do echo "[$word]"; done\n')
    (fake / "cifar-bench").chmod(0o755)
    result = subprocess.run(
        ["make", "-s", "predict", "CKPT=runs/my run/last.ckpt", "IMAGES=", f"BIN={fake}", "ARGS="],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.stdout.splitlines() == ["[predict]", "[--ckpt]", "[runs/my run/last.ckpt]"]


class StillImporting(types.ModuleType):
    """A module whose names are not there yet: reading one is where a Ctrl-C during its import lands."""

    def __getattr__(self, name):
        raise KeyboardInterrupt


def test_a_ctrl_c_while_lightning_is_still_importing_is_one_line_and_status_130(capsys, monkeypatch):
    monkeypatch.setitem(
        sys.modules, "cifar_bench.training.lightning_cli", StillImporting("cifar_bench.training.lightning_cli")
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", "configs/mlp.yaml"])
    assert exit_info.value.code == 130
    assert (
        capsys.readouterr().err
        == "error: interrupted; the same command with --ckpt_path last continues from the last finished epoch\n"
    )
