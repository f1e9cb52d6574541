"""Shared set-up: tiny CIFAR-10 copies in the official formats written by the tests themselves, the
command line as a user types it, and one tiny MLP trained once for the whole session."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

try:
    from numpy._core.multiarray import _reconstruct as _numpy_reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct as _numpy_reconstruct

from cifar_bench.data.sources import BINARY_FOLDER, CLASS_NAMES, PYTHON_FOLDER, TRAIN_BATCHES

PER_BATCH = 40  # records per official batch file in the tiny copies (4 per class)
# Under 1 KB of YAML aliases, ten deep and ten wide: ten billion values once ``*a9`` is built whole.
ALIAS_CHAIN = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
)


def tiny_batches(per_batch: int = PER_BATCH, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Six (images (N, 3072) uint8, labels (N,)) batches: five training batches, then the test batch.

    Every class appears equally often in each batch; pixels are random but fixed by the seed.
    """
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(TRAIN_BATCHES + 1):
        labels = rng.permutation(np.arange(per_batch) % len(CLASS_NAMES))
        images = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        batches.append((images, labels))
    return batches


def write_python_version(root: Path, batches=None) -> Path:
    """Write ``cifar-10-batches-py/`` as the official pickles (protocol 2 dicts with bytes keys)."""
    folder = root / PYTHON_FOLDER
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, TRAIN_BATCHES + 1)] + ["test_batch"]
    for name, (images, labels) in zip(names, batches or tiny_batches()):
        content = {b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": images, b"filenames": []}
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))
    meta = {b"label_names": [name.encode() for name in CLASS_NAMES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def write_binary_version(root: Path, batches=None) -> Path:
    """Write ``cifar-10-batches-bin/``: 3073-byte records (label byte, then R, G, B planes)."""
    folder = root / BINARY_FOLDER
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}.bin" for i in range(1, TRAIN_BATCHES + 1)] + ["test_batch.bin"]
    for name, (images, labels) in zip(names, batches or tiny_batches()):
        records = np.concatenate([labels.astype(np.uint8)[:, None], images], axis=1)
        (folder / name).write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    return folder


def write_archive(folder: Path, archive: Path) -> Path:
    """Pack an extracted folder as an official archive; compression from the name (.tar.gz, .tar.xz...)."""
    mode = {".gz": "w:gz", ".xz": "w:xz", ".bz2": "w:bz2", ".tar": "w"}[archive.suffix]
    with tarfile.open(archive, mode) as tar:
        tar.add(folder, arcname=folder.name)
    return archive


WRITERS = {"python": write_python_version, "binary": write_binary_version}


def packed(data_dir: Path, version: str = "binary", suffix: str = "tar.gz", drop=(), extra=()) -> Path:
    """An archive named as the official one in ``data_dir``: the tiny copy without the files in ``drop``,
    followed by the ``extra`` (TarInfo, bytes) members."""
    source = WRITERS[version](data_dir.parent / f"source-{version}")
    data_dir.mkdir(parents=True, exist_ok=True)
    archive = data_dir / f"cifar-10-{version}.{suffix}"
    mode = {"tar.gz": "w:gz", "tar.xz": "w:xz", "tar.bz2": "w:bz2", "tar": "w"}[suffix]
    with tarfile.open(archive, mode) as tar:
        tar.add(source, arcname=source.name, filter=lambda info: None if Path(info.name).name in drop else info)
        for info, content in extra:
            tar.addfile(info, io.BytesIO(content) if info.isfile() else None)
    return archive


def member(
    name: str, content: bytes = b"x", kind: bytes = tarfile.REGTYPE, target: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    """One extra archive member: a regular file by default, or a link (``target``) or special file."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, target, len(content) if kind == tarfile.REGTYPE else 0
    return info, content


def edited(path: Path, edit) -> Path:
    """Rewrite a file with ``edit(old bytes)``."""
    path.write_bytes(edit(path.read_bytes()))
    return path


def edited_python_batch(data_dir: Path, name: str, **fields) -> Path:
    """The tiny python copy with some entries of one pickled batch replaced."""
    path = write_python_version(data_dir) / name
    content = pickle.loads(path.read_bytes())
    content.update({key.encode(): value for key, value in fields.items()})
    path.write_bytes(pickle.dumps(content, protocol=2))
    return path


class Reduced:
    """Pickles as ``function(*arguments)``, then ``state`` set on the result: how a crafted file spells anything."""

    def __init__(self, function, arguments, state=None):
        self.function, self.arguments, self.state = function, arguments, state

    def __reduce__(self):
        return (self.function, self.arguments) if self.state is None else (self.function, self.arguments, self.state)


def crafted_array(shape, raw: bytes, code: str = "u1", dtype_state=None) -> Reduced:
    """An array pickled the way numpy pickles one, but with any shape, bytes and dtype state."""
    plain_state = (3, "|" if code.endswith("1") else "<", None, None, None, -1, -1, 0)
    dtype = Reduced(np.dtype, (code, False, True), dtype_state or plain_state)
    return Reduced(_numpy_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, raw))


def _py2_int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    return b"M" + struct.pack("<H", value) if 0 <= value < 65536 else b"J" + struct.pack("<i", value)


def _py2_str(value: bytes) -> bytes:
    return b"U" + bytes([len(value)]) + value if len(value) < 256 else b"T" + struct.pack("<i", len(value)) + value


def _py2(value) -> bytes:
    if isinstance(value, bytes):
        return _py2_str(value)
    if isinstance(value, int):
        return _py2_int(value)
    if isinstance(value, list):
        return b"](" + b"".join(map(_py2, value)) + b"e"
    if isinstance(value, dict):
        return b"}(" + b"".join(_py2(key) + _py2(item) for key, item in value.items()) + b"u"
    assert isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 2
    dtype = (
        b"cnumpy\ndtype\n"
        + _py2_str(b"u1")
        + b"K\x00K\x01\x87R(K\x03"
        + _py2_str(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    shape = _py2_int(value.shape[0]) + _py2_int(value.shape[1]) + b"\x86"
    reconstruct = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_str(b"b") + b"\x87R"
    return reconstruct + b"(K\x01" + shape + dtype + b"\x89" + _py2_str(value.tobytes()) + b"tb"


def python2_pickle(content: dict) -> bytes:
    """``content`` as Python 2's cPickle with numpy 1.x wrote the official batches (protocol 2, py2 strings)."""
    return b"\x80\x02" + _py2(content) + b"."


@pytest.fixture(autouse=True, scope="session")
def bare_sys_argv():
    """The command line is run in this process with its words given (``main(args)``): LightningCLI warns
    when sys.argv (here pytest's own arguments) is there as well."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", ["cifar-bench"])
        yield


@pytest.fixture(autouse=True, scope="session")
def own_cache_folder(tmp_path_factory):
    """The user's cache folder (where the feature stores' secret is kept) one of the session's own, for
    this process and the commands it starts."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def python_copy(tmp_path) -> Path:
    """A data_dir holding an extracted python version."""
    write_python_version(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A data_dir holding the tiny python version, shared by every test that only reads it."""
    root = tmp_path_factory.mktemp("data")
    write_python_version(root)
    return root


@pytest.fixture(scope="session")
def tiny_binary_data(tmp_path_factory) -> Path:
    """A data_dir holding the tiny binary version, shared by every test that only reads it."""
    root = tmp_path_factory.mktemp("binary_data")
    write_binary_version(root)
    return root


@pytest.fixture
def binary_copy(tmp_path) -> Path:
    """A data_dir holding an extracted binary version."""
    write_binary_version(tmp_path)
    return tmp_path


SNAPSHOT_BYTES = 2**20


def snapshot(root: Path, outside: str | None = None) -> dict[str, object]:
    """Everything under ``root`` (but the top-level folder ``outside``): each file's inode, size, and
    modification and change times, and the bytes of those up to ``SNAPSHOT_BYTES``; symlink targets, folders.

    Two equal snapshots of one tree mean nothing was written, replaced, added or removed: a replacement is
    another inode, and the kernel sets a file's change time on every write (no call sets it back; kernels
    before 6.13 at a clock tick's resolution, so small files are compared byte for byte too, and a large one
    is not reread for every case of a table). Folder times are left out: a temporary folder created and
    removed again changes them and nothing else.
    """
    state: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if outside is not None and relative.parts[0] == outside:
            continue
        if path.is_symlink():
            state[str(relative)] = ("symlink", str(path.readlink()))
        elif path.is_dir():
            state[str(relative)] = "folder"
        else:
            status = path.stat()
            content = path.read_bytes() if status.st_size <= SNAPSHOT_BYTES else None
            state[str(relative)] = (
                "file",
                status.st_ino,
                status.st_size,
                status.st_mtime_ns,
                status.st_ctime_ns,
                content,
            )
    return state


TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CONFIGS = REPO / "configs"


def cli_args(
    subcommand: str,
    model: str,
    data_dir: Path,
    logs: Path,
    *extra: str,
    val_size: int = 20,
    batch_size: int = 8,
    eval_batch_size: int | None = None,
) -> list[str]:
    """A cifar-bench command line as a user types it (the model's config over base.yaml) for a tiny
    copy in ``data_dir``; every file the run writes goes under ``logs``."""
    return [
        subcommand,
        "--config", str(CONFIGS / f"{model}.yaml"),
        "--data.data_dir", str(data_dir),
        "--data.download", "false",
        "--data.val_size", str(val_size),
        "--data.batch_size", str(batch_size),
        "--data.eval_batch_size", str(eval_batch_size or batch_size),
        "--trainer.logger.init_args.save_dir", str(logs),
        "--trainer.default_root_dir", str(logs),
        *extra,
    ]  # fmt: skip


def cli_command(*words: str) -> list[str]:
    return [sys.executable, "-m", "cifar_bench", *words]


def cli_environment(*paths: Path) -> dict[str, str]:
    """This process's environment with ``paths``, then this checkout, first on PYTHONPATH."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*map(str, paths), str(REPO), os.environ.get("PYTHONPATH", "")]),
    }


def run_cli(
    *words: str, cwd: Path | None = None, timeout: int = 600, paths: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess:
    """``python -m cifar_bench WORDS`` in its own process, ``paths`` and this checkout first on the path."""
    return subprocess.run(
        cli_command(*words),
        cwd=cwd or REPO,
        env=cli_environment(*paths),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- one tiny MLP, trained once per session ----------------------------------------------------------

CLASS_SIZES = (1, 2, 3, 4, 5, 6, 7, 5, 4, 3)  # images per class in each batch: weighted and macro averages differ


def imbalanced_batches() -> list[tuple[np.ndarray, np.ndarray]]:
    """The tiny batches relabelled with unequal class sizes (40 images each): what ``trained_mlp`` learns from."""
    rng = np.random.default_rng(1)
    return [(images, rng.permutation(np.repeat(np.arange(10), CLASS_SIZES))) for images, _ in tiny_batches()]


@pytest.fixture(scope="session")
def imbalanced_data(tmp_path_factory) -> Path:
    """A data_dir holding the python version of ``imbalanced_batches()``; read only."""
    root = tmp_path_factory.mktemp("imbalanced_data")
    write_python_version(root, imbalanced_batches())
    return root


def fit_tiny(data_dir: Path, logs: Path, model: str = "mlp", *extra: str) -> Path:
    """Train a model on a tiny copy through the command line, in this process; returns its run folder."""
    from cifar_bench.cli import main

    main(cli_args("fit", model, data_dir, logs, "--trainer.enable_model_summary", "false", *extra, eval_batch_size=64))
    (run,) = (logs / model).glob("version_*")
    return run


@pytest.fixture(scope="session")
def trained_mlp(tmp_path_factory, imbalanced_data) -> Iterator[Path]:
    """The run folder (``<logs>/mlp/version_0``) of an MLP trained 2 epochs in full precision on
    ``imbalanced_data``, so that predictions can be recomputed exactly. Shared by the whole session:
    never write into it (checked at the end of the session); ``copy_run`` gives a copy to change or evaluate."""
    run = fit_tiny(
        imbalanced_data,
        tmp_path_factory.mktemp("trained_mlp"),
        "mlp",
        "--trainer.max_epochs",
        "2",
        "--trainer.precision",
        "32-true",
        "--trainer.enable_progress_bar",
        "false",
        # A plain cosine, whatever the packaged recipe's warm-up: the schedule tests read its saved state.
        "--model.warmup_epochs",
        "0",
    )
    trained = snapshot(run)
    yield run
    assert snapshot(run) == trained, "a test wrote into the shared trained_mlp run: give it copy_run(trained_mlp, ...)"


def copy_run(run: Path, logs: Path) -> Path:
    """A copy of a run folder as ``<logs>/<model>/version_0`` (the logger's layout), without its evaluation."""
    return Path(shutil.copytree(run, logs / run.parent.name / "version_0", ignore=shutil.ignore_patterns("evaluation")))


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 4 MiB tmpfs mounted for the test (as root; skipped where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip() or 'mount failed'}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until ``path`` exists, failing with the process's last error output if it ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            error = process.communicate()[1] or ""
            raise AssertionError((error.decode() if isinstance(error, bytes) else error)[-3000:])
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


# --- big networks, without the seconds of initialising them ------------------------------------------


def with_random_weights(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A network of parameters only (a VGG16, not a LightningModule with metric states) built on the meta
    device (``with torch.device("meta"):``), given seeded He-normal weights and zero biases on the CPU, in
    place: for tests that compute with a VGG16 whose weights' values do not matter, without the package's
    initialisation of 138M parameters (seconds on a CPU; tested on its own)."""
    generator = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        for name, parameter in list(layer.named_parameters(recurse=False)):
            if parameter.dim() > 1:
                fan_in = parameter[0].numel()
                value = torch.randn(parameter.shape, generator=generator, device="cpu") * (2 / fan_in) ** 0.5
            else:
                value = torch.zeros(parameter.shape, device="cpu")
            setattr(layer, name, torch.nn.Parameter(value, requires_grad=parameter.requires_grad))
    assert not any(tensor.is_meta for tensor in [*module.parameters(), *module.buffers()])
    return module


# --- Markdown as GitHub shows it -----------------------------------------------------------------------


class RenderedPage(HTMLParser):
    """A rendered page's elements: each tag with its attributes, and the text of each element that holds text."""

    def __init__(self, page: str):
        super().__init__()
        self.tags, self.texts, self._open = [], [], []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._open.append([])

    def handle_endtag(self, tag):
        text = "".join(self._open.pop()) if self._open else ""
        if text.strip():
            self.texts.append(text)

    def handle_data(self, data):
        if self._open:
            self._open[-1].append(data)


def github_rendered(markdown: str) -> RenderedPage:
    """Markdown through GitHub's own renderer (cmark-gfm, a dev extra) with raw HTML kept, as GitHub does
    before it sanitises: a link, image or tag the text adds shows here."""
    cmarkgfm = pytest.importorskip("cmarkgfm", reason="GitHub's Markdown renderer: pip install -e '.[dev]'")
    return RenderedPage(cmarkgfm.github_flavored_markdown_to_html(markdown, options=cmarkgfm.Options.CMARK_OPT_UNSAFE))
