"""Files crafted to harm the reader: numpy state that would corrupt memory, archive bombs, odd data_dirs.

Official files keep loading, in every form they exist in: Python 2 pickles as distributed, and
pickles written by numpy 1 or 2 at any protocol.
"""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch
import torchvision.datasets.utils
from conftest import (
    REPO,
    crafted_array,
    member,
    packed,
    python2_pickle,
    snapshot,
    tiny_batches,
    write_binary_version,
    write_python_version,
)

from cifar_bench.data import archives
from cifar_bench.data.sources import CLASS_NAMES, PYTHON_FILES, PYTHON_FOLDER, load_cifar10
from cifar_bench.errors import CifarBenchError

FIELDS = 8  # itemsize of the structured dtypes below

# numpy dtype states that official batches never hold. numpy trusts each one: it would read a
# pointer from raw bytes, read memory far outside the array, or free bytes as Python objects.
HOSTILE_ARRAYS = {
    "object-field-in-labels": (
        "labels",
        crafted_array((40,), b"A" * 40 * FIELDS, "V8", (3, "|", None, ("x",), {"x": (np.dtype("O"), 0)}, FIELDS, 1, 0)),
    ),
    "field-far-outside-the-array": (
        "labels",
        crafted_array(
            (40,), b"A" * 40 * FIELDS, "V8", (3, "|", None, ("x",), {"x": (np.dtype("i8"), 10**12)}, FIELDS, 1, 0)
        ),
    ),
    "uint8-with-object-flags": (
        "data",
        crafted_array((40, 3072), b"A" * 40 * 3072, "u1", (3, "|", None, None, None, -1, -1, 63)),
    ),
    "object-dtype": (
        "data",
        crafted_array((40, 3072), b"A" * 40 * 3072 * 8, "O8", (3, "|", None, None, None, -1, -1, 63)),
    ),
    "subarray-dtype": (
        "data",
        crafted_array((40, 1), b"A" * 40 * 3072, "V3072", (3, "|", (np.dtype("u1"), (3072,)), None, None, 3072, 1, 0)),
    ),
}

READ_EACH = """
import sys
from pathlib import Path
from cifar_bench.data.sources import read_python_batch
from cifar_bench.errors import CifarBenchError
for name in sys.argv[1:]:
    try:
        read_python_batch(Path(name))
        print(Path(name).name, "read without error", sep="\t", flush=True)
    except CifarBenchError as error:
        print(Path(name).name, f"CifarBenchError: {error}", sep="\t", flush=True)
"""


@pytest.fixture(scope="module")
def hostile_batches_read(tmp_path_factory) -> dict[str, str]:
    """Each hostile batch read in a child process (the old reader crashed it): case -> what reading it gave."""
    folder = tmp_path_factory.mktemp("hostile")
    images, labels = tiny_batches()[0]
    for case, (field, array) in HOSTILE_ARRAYS.items():
        content = {b"data": images, b"labels": labels.tolist(), field.encode(): array}
        (folder / case).write_bytes(pickle.dumps(content, protocol=2))
    result = subprocess.run(
        [sys.executable, "-c", READ_EACH, *(str(folder / case) for case in HOSTILE_ARRAYS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"the reader crashed (exit code {result.returncode}): {result.stdout}{result.stderr[-2000:]}"
    )
    return dict(line.split("\t", 1) for line in result.stdout.splitlines())


@pytest.mark.parametrize("case", HOSTILE_ARRAYS)
def test_numpy_state_beyond_plain_arrays_is_refused_without_building_it(hostile_batches_read, case):
    assert re.fullmatch(
        rf"CifarBenchError: \S*/{case} is not a CIFAR-10 python batch \(refusing .*", hostile_batches_read[case]
    )


@pytest.mark.parametrize(
    "blob, refused",
    [
        pytest.param(
            b"\x80\x02cnumpy\ndtype\n}X\x08\x00\x00\x00__call__K\x01sb.",
            r"refusing to modify numpy\.dtype",
            id="build-on-a-global",
        ),
        pytest.param(
            pickle.dumps(crafted_array((1, 3072), bytes(3072)), protocol=2)[:-1] + b"Nb.",
            r"refusing a numpy array state",
            id="build-twice",
        ),
    ],
)
def test_a_pickle_cannot_modify_the_stand_ins(python_copy, blob, refused):
    """BUILD on a global would set attributes on the reader's own stand-ins, for every later file too."""
    (python_copy / PYTHON_FOLDER / "data_batch_1").write_bytes(blob)
    with pytest.raises(CifarBenchError, match=rf"data_batch_1 is not a CIFAR-10 python batch \({refused}"):
        load_cifar10(python_copy, download=False)


def assert_same_data(loaded, expected) -> None:
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(loaded, field), getattr(expected, field)), field


def test_the_official_python2_pickles_load(tmp_path):
    batches = tiny_batches()
    expected = load_cifar10(write_python_version(tmp_path / "python3", batches), download=False)
    folder = tmp_path / "python2" / PYTHON_FOLDER
    folder.mkdir(parents=True)
    for name, (images, labels) in zip(PYTHON_FILES, batches):
        filenames = [b"image_%d.png" % index for index in range(len(labels))]
        blob = python2_pickle(
            {b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": images, b"filenames": filenames}
        )
        assert np.array_equal(pickle.loads(blob, encoding="bytes")[b"data"], images)  # numpy reads the blob as intended
        (folder / name).write_bytes(blob)
    meta = {
        b"num_cases_per_batch": len(batches[0][1]),
        b"label_names": [name.encode() for name in CLASS_NAMES],
        b"num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(python2_pickle(meta))
    loaded = load_cifar10(folder, download=False)
    assert_same_data(loaded, expected)
    assert loaded.class_names == CLASS_NAMES


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("labels_as", ["list", "<i8", ">i8", "u1"])
def test_numpy_pickles_of_every_protocol_load(tmp_path, protocol, labels_as):
    batches = tiny_batches()
    expected = load_cifar10(write_python_version(tmp_path / "as-written", batches), download=False)
    folder = write_python_version(tmp_path / "repickled", batches)
    for name, (images, labels) in zip(PYTHON_FILES, batches):
        stored_labels = labels.tolist() if labels_as == "list" else labels.astype(labels_as)
        (folder / name).write_bytes(pickle.dumps({b"data": images, b"labels": stored_labels}, protocol=protocol))
    assert_same_data(load_cifar10(folder, download=False), expected)


def test_an_archive_that_would_unpack_past_the_size_limit_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    assert archives.MAX_UNPACKED_BYTES > 5 * 180_000_000  # well above the real CIFAR-10
    monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 1 << 20)  # the tiny copy unpacks to 0.74 MB
    data_dir = tmp_path / "data"
    packed(data_dir, suffix="tar.bz2", extra=[member("zeros", bytes(2 << 20))])
    before = snapshot(tmp_path)
    with pytest.raises(
        CifarBenchError, match=r"refusing to unpack .*cifar-10-binary\.tar\.bz2: it would unpack to more than 1 MiB"
    ):
        load_cifar10(data_dir, download=False)
    assert snapshot(tmp_path) == before


def test_an_archive_whose_first_header_declares_a_petabyte_name_is_one_error(tmp_path):
    """tarfile reads a GNU long name whole, as its header declares it, before any of the package's bounds apply."""
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = tarfile.GNUTYPE_LONGNAME, 2**50
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar-10-binary.tar").write_bytes(header.tobuf(format=tarfile.GNU_FORMAT) + bytes(1024))
    with pytest.raises(
        CifarBenchError, match="cifar-10-binary.tar is (not a readable tar archive|truncated or corrupt)"
    ):
        load_cifar10(tmp_path / "data", download=False)


def test_a_class_names_file_of_a_terabyte_is_one_error(tmp_path):
    folder = write_binary_version(tmp_path / "data")
    with open(folder / "batches.meta.txt", "wb") as meta:
        meta.truncate(2**40)  # sparse: no disk used
    with pytest.raises(CifarBenchError, match=r"cannot read class names from .*batches.meta.txt"):
        load_cifar10(tmp_path / "data", download=False)


def test_an_archive_with_too_many_members_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "MAX_MEMBERS", 20)  # the tiny copy has 9
    data_dir = tmp_path / "data"
    packed(data_dir, extra=[member(f"many/{index}") for index in range(30)])
    before = snapshot(tmp_path)
    with pytest.raises(
        CifarBenchError, match=r"refusing to unpack .*cifar-10-binary\.tar\.gz: it holds more than 20 members"
    ):
        load_cifar10(data_dir, download=False)
    assert snapshot(tmp_path) == before


def test_bytes_written_beyond_what_the_headers_declare_count_against_the_limit(tmp_path, monkeypatch):
    """Should extraction ever write more than a member's header declares, the bytes on disk still stop it."""
    data_dir = tmp_path / "data"
    packed(data_dir)  # unpacks to 0.74 MB as declared, 1.5 MB as written below
    before = snapshot(tmp_path)
    copy = tarfile.copyfileobj

    def copy_then_pad(source, target, length=None, *args, **kwargs):
        copy(source, target, length, *args, **kwargs)
        target.write(bytes(length or 0))

    monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 1 << 20)
    monkeypatch.setattr(tarfile, "copyfileobj", copy_then_pad)
    with pytest.raises(CifarBenchError, match=r"refusing to unpack .*: it wrote more than 1 MiB"):
        load_cifar10(data_dir, download=False)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "target, message",
    [
        pytest.param("data", r"cannot use data_dir .*Too many levels of symbolic links", id="symlink-loop"),
        pytest.param(
            "gone", r"cannot create data_dir .*File exists.*: pass a folder you can write to", id="dangling-symlink"
        ),
    ],
)
def test_a_data_dir_symlink_to_nowhere_is_one_error_even_when_downloading(tmp_path, monkeypatch, target, message):
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", lambda *args, **kwargs: pytest.fail("downloaded"))
    data_dir = tmp_path / "data"
    data_dir.symlink_to(tmp_path / target)
    with pytest.raises(CifarBenchError, match=message) as caught:
        load_cifar10(data_dir, download=True)
    assert "\n" not in str(caught.value)
