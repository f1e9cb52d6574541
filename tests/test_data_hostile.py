"""Archives crafted to harm the reader: bombs that would fill the disk."""

from __future__ import annotations

import tarfile

import pytest
from conftest import member, packed, snapshot

from cifar_bench.data import archives
from cifar_bench.data.sources import load_cifar10
from cifar_bench.errors import CifarBenchError


def test_an_archive_that_would_unpack_past_the_size_limit_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    assert archives.MAX_UNPACKED_BYTES > 5 * 180_000_000  # well above the real CIFAR-10
    monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 1 << 20)  # the tiny copy unpacks to 0.74 MB
    data_dir = tmp_path / "data"
    packed(data_dir, suffix="tar.bz2", extra=[member("zeros", bytes(2 << 20))])
    before = snapshot(tmp_path)
    with pytest.raises(CifarBenchError, match=r"refusing to unpack .*cifar-10-binary\.tar\.bz2: it would unpack to more than 1 MiB"):
        load_cifar10(data_dir, download=False)
    assert snapshot(tmp_path) == before


def test_an_archive_with_too_many_members_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "MAX_MEMBERS", 20)  # the tiny copy has 9
    data_dir = tmp_path / "data"
    packed(data_dir, extra=[member(f"many/{index}") for index in range(30)])
    before = snapshot(tmp_path)
    with pytest.raises(CifarBenchError, match=r"refusing to unpack .*cifar-10-binary\.tar\.gz: it holds more than 20 members"):
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
