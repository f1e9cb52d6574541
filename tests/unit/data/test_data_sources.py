"""Finding and reading CIFAR-10: every source, both formats, and every bad input as one clear error."""

from __future__ import annotations

import _codecs
import os
import pickle
import subprocess
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.utils
from conftest import (
    WRITERS,
    Reduced,
    crafted_array,
    edited,
    edited_python_batch,
    member,
    packed,
    run_cli,
    snapshot,
    tiny_batches,
    write_archive,
    write_binary_version,
    write_python_version,
)

from cifar_bench.data import archives, sources
from cifar_bench.data.sources import BINARY_FOLDER, CLASS_NAMES, PYTHON_FOLDER, load_cifar10, locate
from cifar_bench.errors import CifarBenchError


def joined(batches) -> tuple[torch.Tensor, torch.Tensor]:
    """Official batches concatenated as the reader returns them: uint8 (N, 3, 32, 32) and int64 labels."""
    images = torch.from_numpy(np.concatenate([images for images, _ in batches])).view(-1, 3, 32, 32)
    return images, torch.from_numpy(np.concatenate([labels for _, labels in batches]).astype(np.int64))


def assert_holds(arrays, batches=None) -> None:
    """The loaded arrays are exactly the tiny official batches (five training batches, then test)."""
    batches = batches or tiny_batches()
    for (loaded_images, loaded_labels), (images, labels) in zip(
        [(arrays.train_images, arrays.train_labels), (arrays.test_images, arrays.test_labels)],
        [joined(batches[:5]), joined(batches[5:])],
    ):
        assert torch.equal(loaded_images, images) and loaded_images.dtype == torch.uint8
        assert torch.equal(loaded_labels, labels) and loaded_labels.dtype == torch.int64
    assert arrays.train_batch_sizes == tuple(len(labels) for _, labels in batches[:5])


# ---------------------------------------------------------------- where the data comes from


@pytest.mark.parametrize("version", ["python", "binary"])
def test_an_extracted_official_copy_is_read_as_is(tmp_path, version):
    WRITERS[version](tmp_path)
    before = snapshot(tmp_path)
    assert_holds(load_cifar10(tmp_path, download=False))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("version", ["python", "binary"])
def test_data_dir_may_point_directly_at_the_extracted_folder(tmp_path, version):
    folder = WRITERS[version](tmp_path)
    assert locate(folder, download=False) == folder
    assert_holds(load_cifar10(folder, download=False))


@pytest.mark.parametrize(
    "version, suffix",
    [("python", "tar.gz"), ("binary", "tar.gz"), ("binary", "tar.xz"), ("python", "tar.bz2"), ("binary", "tar")],
)
def test_an_official_archive_in_any_tar_compression_is_unpacked_into_data_dir(tmp_path, version, suffix):
    data_dir = tmp_path / "data"
    archive = packed(data_dir, version, suffix)
    archive_bytes = archive.read_bytes()
    assert_holds(load_cifar10(data_dir, download=False))
    folder = PYTHON_FOLDER if version == "python" else BINARY_FOLDER
    assert sorted(path.name for path in data_dir.iterdir()) == sorted([archive.name, folder])
    assert archive.read_bytes() == archive_bytes


def test_a_symlink_to_an_archive_elsewhere_is_unpacked_and_the_archive_left_alone(tmp_path):
    archive = packed(tmp_path / "shared", "binary", "tar.xz")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / archive.name).symlink_to(archive)
    before = snapshot(tmp_path / "shared")
    assert_holds(load_cifar10(data_dir, download=False))
    assert (data_dir / BINARY_FOLDER).is_dir() and not (data_dir / BINARY_FOLDER).is_symlink()
    assert snapshot(tmp_path / "shared") == before


def test_an_archive_is_unpacked_once_and_the_folder_read_afterwards(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    packed(data_dir)
    load_cifar10(data_dir, download=False)
    monkeypatch.setattr(sources, "unpack_archive", lambda *args: pytest.fail("unpacked a second time"))
    assert_holds(load_cifar10(data_dir, download=False))


def test_an_extracted_copy_wins_over_an_archive_and_python_over_binary(tmp_path, monkeypatch):
    other = tiny_batches(seed=1)
    write_python_version(tmp_path)
    write_binary_version(tmp_path, other)
    packed(tmp_path / "archives")
    (tmp_path / "archives" / "cifar-10-binary.tar.gz").rename(tmp_path / "cifar-10-binary.tar.gz")
    monkeypatch.setattr(sources, "unpack_archive", lambda *args: pytest.fail("unpacked despite an extracted copy"))
    assert_holds(load_cifar10(tmp_path, download=False))


def test_an_existing_copy_is_used_without_downloading(python_copy, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", lambda *args, **kwargs: pytest.fail("downloaded"))
    assert_holds(load_cifar10(python_copy, download=True))


def test_without_a_copy_torchvision_downloads_the_python_archive_which_is_then_unpacked(tmp_path, monkeypatch):
    calls = []

    def download_url(url, root, filename=None, md5=None):
        calls.append(url)
        source = write_python_version(tmp_path / "server")
        write_archive(source, Path(root) / filename)

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", download_url)
    data_dir = tmp_path / "fresh" / "data"
    assert_holds(load_cifar10(data_dir, download=True))
    assert calls == [torchvision.datasets.CIFAR10.url]
    assert (data_dir / PYTHON_FOLDER).is_dir() and (data_dir / "cifar-10-python.tar.gz").is_file()


def test_a_failed_download_is_one_error_naming_the_folder_and_the_three_ways(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    with pytest.raises(CifarBenchError) as caught:
        load_cifar10(tmp_path / "data", download=True)
    message = str(caught.value)
    assert "\n" not in message
    assert str((tmp_path / "data").resolve()) in message and "download failed" in message
    assert "Temporary failure in name resolution" in message
    for way in (PYTHON_FOLDER, "cifar-10-python.tar.gz", "download on a machine with internet"):
        assert way in message


# ---------------------------------------------------------------- formats and class names


def test_both_official_formats_give_identical_tensors(tmp_path):
    batches = tiny_batches(seed=3)
    from_python = load_cifar10(write_python_version(tmp_path, batches), download=False)
    from_binary = load_cifar10(write_binary_version(tmp_path, batches), download=False)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(from_python, field), getattr(from_binary, field)), field
    assert from_python.train_batch_sizes == from_binary.train_batch_sizes
    assert from_python.class_names == from_binary.class_names == CLASS_NAMES
    assert_holds(from_python, batches)


def test_class_names_are_read_from_the_meta_files(tmp_path):
    names = tuple(f"class-{name}" for name in CLASS_NAMES)
    python_folder = write_python_version(tmp_path)
    (python_folder / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": [n.encode() for n in names]}, protocol=2)
    )
    binary_folder = write_binary_version(tmp_path)
    (binary_folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    assert load_cifar10(python_folder, download=False).class_names == names
    assert load_cifar10(binary_folder, download=False).class_names == names


def test_without_a_meta_file_the_official_class_names_are_used(binary_copy):
    (binary_copy / BINARY_FOLDER / "batches.meta.txt").unlink()
    assert load_cifar10(binary_copy, download=False).class_names == CLASS_NAMES


# ---------------------------------------------------------------- bad inputs

NAMES = [name.encode() for name in CLASS_NAMES]


def meta_with(label_names):
    """An edit that replaces a pickled batches.meta with one listing ``label_names``."""
    return lambda old: pickle.dumps({b"label_names": label_names, b"num_vis": 3072}, protocol=2)


# Each case: what to put in data_dir (a path that does not exist yet), and what the error must say.
BAD_INPUTS = [
    pytest.param(
        lambda d: None,
        r"no CIFAR-10 copy or archive in .*download is off; provide CIFAR-10 in one of three ways",
        id="missing-folder",
    ),
    pytest.param(
        lambda d: d.mkdir(), r"no CIFAR-10 copy or archive in .*download is off; .*three ways", id="empty-folder"
    ),
    pytest.param(lambda d: d.write_text("notes"), r"is a file, not a folder", id="data-dir-is-a-file"),
    pytest.param(
        lambda d: (write_binary_version(d) / "test_batch.bin").unlink(),
        r"is incomplete \(missing test_batch\.bin\)",
        id="extracted-copy-incomplete",
    ),
    pytest.param(
        lambda d: edited(write_python_version(d) / "data_batch_3", lambda b: b[: len(b) // 2]),
        r"data_batch_3 .*truncated",
        id="python-batch-truncated",
    ),
    pytest.param(
        lambda d: edited(write_python_version(d) / "data_batch_3", lambda b: b[:150]),
        r"data_batch_3 .*truncated",
        id="python-batch-cut-in-header",
    ),
    pytest.param(
        lambda d: edited(write_python_version(d) / "data_batch_1", lambda b: b"\x00" + b[1:]),
        r"data_batch_1 is not a CIFAR-10 python batch",
        id="python-batch-garbled",
    ),
    pytest.param(
        lambda d: edited(write_binary_version(d) / "data_batch_2.bin", lambda b: b[:-1000]),
        r"data_batch_2\.bin is truncated or corrupt: .*3073-byte records",
        id="binary-batch-cut-mid-record",
    ),
    pytest.param(
        lambda d: edited(write_binary_version(d) / "data_batch_2.bin", lambda b: b[:-3073]),
        r"differ in record count \(.*data_batch_2\.bin: 39",
        id="binary-batch-one-record-short",
    ),
    pytest.param(
        lambda d: edited(write_binary_version(d) / "test_batch.bin", lambda b: b""),
        r"test_batch\.bin is truncated or corrupt",
        id="binary-batch-empty",
    ),
    pytest.param(
        lambda d: edited(
            write_binary_version(d) / "data_batch_4.bin",
            lambda b: b"".join(b[i : i + 3073] + b"\0" for i in range(0, len(b), 3073)),
        ),
        r"data_batch_4\.bin .*3073-byte records",
        id="binary-wrong-record-size",
    ),
    pytest.param(
        lambda d: edited_python_batch(d, "data_batch_2", data=np.zeros((40, 3000), np.uint8)),
        r"data_batch_2 has no uint8 'data' array of shape \(N, 3072\)",
        id="python-wrong-record-size",
    ),
    pytest.param(
        lambda d: edited_python_batch(d, "data_batch_2", data=np.zeros((40, 3072), np.float32)),
        r"data_batch_2 has no uint8 'data' array",
        id="python-wrong-dtype",
    ),
    pytest.param(
        lambda d: edited_python_batch(d, "test_batch", labels=[0] * 39),
        r"test_batch holds 40 images but 39 labels",
        id="python-labels-missing",
    ),
    pytest.param(
        lambda d: edited_python_batch(d, "data_batch_5", labels=[10] * 40),
        r"data_batch_5 has a label out of range 0\.\.9",
        id="python-label-out-of-range",
    ),
    pytest.param(
        lambda d: edited_python_batch(d, "data_batch_5", labels=[-1] * 40),
        r"data_batch_5 has a label out of range",
        id="python-label-negative",
    ),
    pytest.param(
        lambda d: edited(write_binary_version(d) / "data_batch_1.bin", lambda b: b"\x0a" + b[1:]),
        r"data_batch_1\.bin has a label out of range 0\.\.9 \(found 0\.\.10\)",
        id="binary-label-out-of-range",
    ),
    pytest.param(
        lambda d: edited(write_binary_version(d) / "batches.meta.txt", lambda b: b"cat\ndog\n"),
        r"list 2 classes, not 10",
        id="meta-wrong-class-count",
    ),
    pytest.param(
        lambda d: edited(write_binary_version(d) / "batches.meta.txt", lambda b: b"\xff\xfe\x00"),
        r"cannot read class names from .*batches\.meta\.txt",
        id="meta-not-text",
    ),
    pytest.param(
        lambda d: edited_python_batch(d, "data_batch_2", data=crafted_array((10**12, 3072), bytes(40 * 3072))),
        r"data_batch_2 is not a CIFAR-10 python batch \(an array declares shape \(1000000000000, 3072\)",
        id="python-absurd-declared-shape",
    ),
    pytest.param(
        lambda d: edited_python_batch(d, "data_batch_2", data=Reduced(_codecs.encode, ("abc", "no-such-codec"))),
        r"data_batch_2 is not a CIFAR-10 python batch \(refusing codec 'no-such-codec'",
        id="python-unknown-codec",
    ),
    pytest.param(
        lambda d: edited(
            write_python_version(d) / "data_batch_4",
            lambda b: pickle.dumps({**pickle.loads(b), b"\xff\xfe": 0}, protocol=2),
        ),
        r"data_batch_4 has a key that is not UTF-8 text",
        id="python-key-not-utf8",
    ),
    pytest.param(
        lambda d: edited_python_batch(d, "data_batch_5", labels=[10**5000] * 40),
        r"data_batch_5 has a label out of range 0\.\.9 \(found 10\.\.10\)",
        id="python-label-beyond-int64",
    ),
    pytest.param(
        lambda d: edited_python_batch(d, "data_batch_5", labels="0123"),
        r"data_batch_5 has no 'labels' list of integers",
        id="python-labels-not-a-list",
    ),
    pytest.param(
        lambda d: edited(write_python_version(d) / "batches.meta", meta_with(NAMES[:9])),
        r"list 9 classes, not 10",
        id="meta-nine-names",
    ),
    pytest.param(
        lambda d: edited(write_python_version(d) / "batches.meta", meta_with([10**5000] * 10)),
        r"label names must be printable text, but .*batches\.meta holds a value of type int",
        id="meta-names-not-text",
    ),
    pytest.param(
        lambda d: edited(write_python_version(d) / "batches.meta", meta_with(7)),
        r"batches\.meta has no 'label_names' list",
        id="meta-names-not-a-list",
    ),
    pytest.param(
        lambda d: edited(write_python_version(d) / "batches.meta", meta_with([b"\xffcat"] + NAMES[1:])),
        r"label names must be printable text",
        id="meta-name-not-utf8",
    ),
    pytest.param(
        lambda d: edited(write_python_version(d) / "batches.meta", meta_with([b"\x1b[31mairplane"] + NAMES[1:])),
        r"label names must be printable text, but .* holds b'\\x1b\[31mairplane'",
        id="meta-name-escape-sequence",
    ),
    pytest.param(
        lambda d: edited(write_binary_version(d) / "batches.meta.txt", lambda b: b.replace(b"cat", b"c\x07at")),
        r"label names must be printable text, but .*batches\.meta\.txt holds 'c\\x07at'",
        id="meta-txt-control-character",
    ),
    pytest.param(
        lambda d: d.symlink_to(d),
        r"cannot use data_dir .*Too many levels of symbolic links",
        id="data-dir-symlink-loop",
    ),
    pytest.param(
        lambda d: packed(d, extra=[member("../evil")]), r"refusing to unpack .*'\.\./evil'", id="archive-member-escapes"
    ),
    pytest.param(
        lambda d: packed(d, extra=[member("/cifar-bench-absolute")]),
        r"refusing to unpack .*cifar-bench-absolute",
        id="archive-member-absolute",
    ),
    pytest.param(
        lambda d: packed(d, extra=[member(f"{BINARY_FOLDER}/link", kind=tarfile.SYMTYPE, target="/etc/passwd")]),
        r"refusing to unpack .*link or special file",
        id="archive-symlink-member",
    ),
    pytest.param(
        lambda d: packed(
            d, extra=[member(f"{BINARY_FOLDER}/hard", kind=tarfile.LNKTYPE, target=f"{BINARY_FOLDER}/data_batch_1.bin")]
        ),
        r"refusing to unpack .*link or special file",
        id="archive-hardlink-member",
    ),
    pytest.param(
        lambda d: packed(d, extra=[member("fifo", kind=tarfile.FIFOTYPE)]),
        r"refusing to unpack .*link or special file",
        id="archive-special-member",
    ),
    pytest.param(
        lambda d: packed(d, drop=("data_batch_4.bin",)),
        r"lacks data_batch_4\.bin: it is incomplete",
        id="archive-missing-a-batch",
    ),
    pytest.param(
        lambda d: packed(d, "python", drop=(PYTHON_FOLDER,), extra=[member("README.txt")]),
        r"holds 0 of the folders",
        id="archive-without-official-folder",
    ),
    pytest.param(
        lambda d: (
            d.mkdir(),
            (d / "cifar-10-python.tar.gz").write_text("<!DOCTYPE html><html><body>Sign in</body></html>"),
        ),
        r"cifar-10-python\.tar\.gz is not a readable tar archive",
        id="html-page-saved-as-archive",
    ),
    pytest.param(
        lambda d: (d.mkdir(), (d / "cifar-10-binary.tar.xz").write_bytes(b"")),
        r"is not a readable tar archive",
        id="archive-empty-file",
    ),
    pytest.param(
        lambda d: edited(packed(d, suffix="tar.gz"), lambda b: b[: len(b) // 2]),
        r"cifar-10-binary\.tar\.gz is truncated or corrupt",
        id="archive-gz-truncated",
    ),
    pytest.param(
        lambda d: edited(packed(d, suffix="tar.xz"), lambda b: b[: len(b) // 2]),
        r"cifar-10-binary\.tar\.xz is truncated or corrupt",
        id="archive-xz-truncated",
    ),
    pytest.param(
        lambda d: edited(packed(d, suffix="tar.xz"), lambda b: b[: len(b) // 2] + bytes(64) + b[len(b) // 2 + 64 :]),
        r"cifar-10-binary\.tar\.xz is truncated or corrupt",
        id="archive-xz-corrupt",
    ),
    pytest.param(
        lambda d: edited(packed(d, suffix="tar"), lambda b: b[:5000]),
        r"cifar-10-binary\.tar is truncated or corrupt",
        id="archive-tar-truncated",
    ),
    pytest.param(
        lambda d: packed(d, extra=[member(f"{BINARY_FOLDER}/data_batch_2.bin", bytes(1000))]),
        r"cifar-10-binary\.tar\.gz is damaged and was not unpacked: .*\(cifar-10-batches-bin/data_batch_2\.bin is truncated",
        id="archive-with-a-truncated-batch",
    ),
    pytest.param(
        lambda d: packed(d, "python", extra=[member(f"{PYTHON_FOLDER}/test_batch", b"garbage")]),
        r"cifar-10-python\.tar\.gz is damaged and was not unpacked: .*\(cifar-10-batches-py/test_batch ",
        id="archive-with-an-invalid-batch",
    ),
    pytest.param(
        lambda d: packed(d, extra=[member(f"{BINARY_FOLDER}/batches.meta.txt", b"cat\n")]),
        r"cifar-10-binary\.tar\.gz is damaged and was not unpacked: .*list 1 classes",
        id="archive-with-a-bad-meta-file",
    ),
]


@pytest.mark.parametrize("build, message", BAD_INPUTS)
def test_bad_input_is_one_clear_error_and_damages_nothing(tmp_path, build, message):
    data_dir = tmp_path / "data"
    build(data_dir)
    before = snapshot(tmp_path)
    with pytest.raises(CifarBenchError, match=message) as caught:
        load_cifar10(data_dir, download=False)
    assert "\n" not in str(caught.value)
    assert snapshot(tmp_path) == before


class _Exploit:
    """Pickles as a call of ``function(*arguments)``: what a malicious batch file would carry."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


@pytest.mark.parametrize("where", ["whole-file", "inside-the-batch"])
@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda marker: _Exploit(os.system, f"touch {marker}"), id="os.system"),
        pytest.param(lambda marker: _Exploit(subprocess.call, ["touch", str(marker)]), id="subprocess.call"),
        pytest.param(lambda marker: _Exploit(exec, f"open({str(marker)!r}, 'w').close()"), id="exec"),
    ],
)
def test_a_malicious_pickle_is_refused_and_not_executed(python_copy, payload, where):
    marker = python_copy / "exploited"
    batch = python_copy / PYTHON_FOLDER / "data_batch_2"
    exploit = payload(marker)
    content = exploit if where == "whole-file" else {b"data": exploit, b"labels": [0]}
    batch.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(CifarBenchError, match=r"data_batch_2 is not a CIFAR-10 python batch \(refusing to load"):
        load_cifar10(python_copy, download=False)
    assert not marker.exists()


def test_an_archive_that_cannot_be_unpacked_in_place_says_to_use_a_writable_folder(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    packed(data_dir)

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(data_dir))

    monkeypatch.setattr(archives.tempfile, "TemporaryDirectory", read_only)
    with pytest.raises(
        CifarBenchError, match=r"cannot unpack cifar-10-binary\.tar\.gz into .*Permission denied.*writable folder"
    ):
        load_cifar10(data_dir, download=False)


def _interrupt_after_members(count: int):
    """A member filter that lets ``count`` members through, then acts as if Ctrl-C was pressed."""
    seen = []

    def interrupting(member, dest_path):
        seen.append(member.name)
        if len(seen) > count:
            raise KeyboardInterrupt
        return archives._plain_members_only(member, dest_path)

    return interrupting


def _interrupting_rename(*args):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    "target, make_replacement",
    [
        pytest.param("_plain_members_only", lambda: _interrupt_after_members(4), id="midway-through-extraction"),
        pytest.param("os.rename", lambda: _interrupting_rename, id="at-the-final-rename"),
    ],
)
def test_an_interrupted_unpack_leaves_nothing_that_passes_for_complete(tmp_path, monkeypatch, target, make_replacement):
    data_dir = tmp_path / "data"
    packed(data_dir, suffix="tar.xz")
    before = snapshot(tmp_path)
    owner = archives.os if target == "os.rename" else archives
    with monkeypatch.context() as patch:
        patch.setattr(owner, target.split(".")[-1], make_replacement())
        with pytest.raises(KeyboardInterrupt):
            load_cifar10(data_dir, download=False)
    assert snapshot(tmp_path) == before  # no folder, no temporary leftovers, archive byte-identical
    assert_holds(load_cifar10(data_dir, download=False))


def test_a_temporary_folder_left_by_a_killed_unpack_is_ignored(tmp_path):
    data_dir = tmp_path / "data"
    packed(data_dir)
    stale = data_dir / ".cifar-unpack-killed" / BINARY_FOLDER
    stale.mkdir(parents=True)
    (stale / "data_batch_1.bin").write_bytes(b"half")
    assert_holds(load_cifar10(data_dir, download=False))
    assert locate(data_dir, download=False) == data_dir / BINARY_FOLDER


# ---------------------------------------------------------------- the command line


@pytest.mark.slow  # a Python process each
@pytest.mark.parametrize("case", ["missing-folder", "binary-batch-cut-mid-record", "archive-member-escapes"])
def test_cli_reports_bad_data_as_one_error_line_and_exit_code_2(tmp_path, case):
    (build,) = [param.values[0] for param in BAD_INPUTS if param.id == case]
    data_dir = tmp_path / "data"
    build(data_dir)
    result = run_cli("analyze", "--data_dir", str(data_dir), "--download", "false", "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [result.stderr.strip()]
    assert not (tmp_path / "out").exists()
