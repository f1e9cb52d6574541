"""Report files are written atomically, under names nobody can plant a link at beforehand; a name from a
file reads as written in Markdown on GitHub."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from conftest import github_rendered, snapshot

from cifar_bench.errors import CifarBenchError
from cifar_bench.output import (
    atomic_file,
    escaped,
    markdown_escaped,
    refuse_links,
    save_figure,
    write_json,
    write_text,
)


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


@pytest.mark.parametrize("swapped", ["mlp", "mlp/version_0", "mlp/version_0/checkpoints"])
def test_a_link_swapped_into_any_component_below_the_root_after_the_check_is_refused_and_not_written_through(
    tmp_path, swapped
):
    """``refuse_links`` checks by path before the work; the write itself walks down from the root it named,
    component by component with O_NOFOLLOW, so a link swapped in between the check and the write (a run's
    ``version_N`` made a link while it trains) is refused, and nothing lands where it points."""
    logs, elsewhere = tmp_path / "logs", tmp_path / "elsewhere"
    checkpoints = logs / "mlp" / "version_0" / "checkpoints"
    checkpoints.mkdir(parents=True)
    refuse_links((checkpoints,), logs)
    (logs / swapped).rename(elsewhere)
    (logs / swapped).symlink_to(elsewhere)
    before = snapshot(elsewhere)

    with pytest.raises(CifarBenchError, match=f"^{logs / swapped} is a link: refusing to write through it"):
        write_text(checkpoints / "last.ckpt", "weights\n")

    assert snapshot(elsewhere) == before


def test_a_folder_the_write_creates_is_created_below_the_root_through_no_link(tmp_path):
    logs = tmp_path / "logs"
    refuse_links((logs / "mlp" / "version_0",), logs)
    write_text(logs / "mlp" / "version_0" / "checkpoints" / "last.ckpt", "weights\n")
    assert (logs / "mlp" / "version_0" / "checkpoints" / "last.ckpt").read_text() == "weights\n"


def test_report_files_get_the_permissions_the_umask_allows_not_those_of_a_private_temporary_file(tmp_path):
    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "summary.txt", "report\n")
    finally:
        os.umask(mask)
    assert (tmp_path / "summary.txt").stat().st_mode & 0o777 == 0o644


NAMES_FROM_FILES = [
    "cnn_bn_do",
    "<img src=x onerror=alert(1)><script>alert(1)</script>",
    "[link](http://evil.example) ![image](x.png) [ref]: http://evil.example",
    "see https://evil.example/a?b=c, HTTP://EVIL.EXAMPLE and ftp://evil.example",
    "www.evil.example and (WWW.Evil.Example)",
    "write to someone@evil.example or mailto:x@evil.example",
    "**bold** _em_ ~~struck~~ `code` ``more`` | a cell",
    "# a heading",
    "- a bullet",
    "+ a bullet",
    "---",
    "12. a numbered item",
    "    indented code",
    "line\nbreak\x1b[2J\u202e",
    "&lt; &amp; an entity \\ a backslash",
]


@pytest.mark.parametrize("name", NAMES_FROM_FILES)
def test_a_name_reads_as_written_on_github_wherever_it_stands_in_markdown(name):
    shown = markdown_escaped(name)
    page = github_rendered(
        f"## {shown}\n\n{shown}\n\n- {shown}\n\n| {shown} | x |\n| --- | --- |\n| {shown} | y |\n\n*{shown}*\n"
    )
    structure = ["h2", "p", "ul", "li", "table", "thead", "tr", "th", "th", "tbody", "tr", "td", "td", "p", "em"]
    assert page.tags == [(tag, {}) for tag in structure]  # no link, image, list or cell of the name's own
    assert page.texts == [escaped(name)] * 4 + ["x", escaped(name), "y", escaped(name)]
