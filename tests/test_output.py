"""Report files are written atomically, under names nobody can plant a link at beforehand."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from cifar_bench.output import atomic_file, save_figure, write_json, write_text


def test_a_link_planted_at_the_old_temporary_name_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "evaluation"
    out.mkdir()
    (out / ".summary.txt.partial").symlink_to(victim)

    write_text(out / "summary.txt", "report\n")

    assert victim.read_text() == "precious\n"
    assert (out / "summary.txt").read_text() == "report\n"


@pytest.mark.parametrize(
    "write",
    [lambda path: write_json(path, {"a": 1}), lambda path: save_figure(plt.figure(), path)],
    ids=["json", "figure"],
)
def test_a_link_planted_at_the_report_name_is_replaced_and_its_target_left_alone(tmp_path, write):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    report = tmp_path / "report"
    report.symlink_to(victim)

    write(report)

    assert victim.read_text() == "precious\n"
    assert not report.is_symlink() and report.stat().st_size > 0


def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    report = tmp_path / "metrics.json"
    report.write_text("old\n")

    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_file(report) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("disk on fire")

    assert report.read_text() == "old\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json"]


def test_report_files_get_the_permissions_the_umask_allows_not_those_of_a_private_temporary_file(tmp_path):
    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "summary.txt", "report\n")
    finally:
        os.umask(mask)
    assert (tmp_path / "summary.txt").stat().st_mode & 0o777 == 0o644
