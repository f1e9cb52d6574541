"""Output of the report commands: rich tables printed whole, files written whole (through ``io.atomic_file``),
and names from files shown safely, with one escaper per output: a terminal (``escaped``, ``literal_text``), a
CSV a spreadsheet opens (``spreadsheet_safe``), Markdown (``markdown_escaped``), a figure (``figure_text``);
HTML is Jinja2's autoescape."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
from contextlib import suppress
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement
from rich.text import Text

from cifar_bench.errors import CifarBenchError
from cifar_bench.io import atomic_file, link_refused, open_folder, read_small_bytes, unwritable, user_path, write_below

# A spreadsheet reads a cell starting with one of these as a formula (or, with a tab or a carriage return,
# may shift it into one): such text cells get a leading apostrophe, as OWASP's CSV-injection advice says.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Markdown's marks (code, emphasis, strikethrough, links and images, table cells, headings), each backslash-escaped.
MARKDOWN_MARKS = re.compile(r"([\\`*_~\[\]|#])")
# What would open a block where the text starts one (a list entry, a paragraph): a bullet, a numbered item,
# a thematic break, an indented code block.
BLOCK_START = r"^(?:[-+](?=[-\s])|\d{1,9}[.)](?=\s)|\s)"
# What GitHub turns into a link unasked (its "extended autolinks"): a scheme's ``://``, a ``www.`` host, an
# e-mail address.
AUTOLINK_MARKS = r":(?=//)|(?i:(?<=www)\.)|@"
STRUCTURE_MARKS = re.compile(f"{BLOCK_START}|{AUTOLINK_MARKS}")


def write_bytes(path: Path, content: bytes) -> Path:
    with atomic_file(path) as handle:
        handle.write(content)
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8", "backslashreplace"))  # a name from an undecodable file name


def write_json(path: Path, content) -> Path:
    return write_text(path, json.dumps(content, indent=1) + "\n")


def png_bytes(figure, dpi: int) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is then released."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(figure)
    return buffer.getvalue()


def save_figure(figure, path: Path) -> Path:
    """Write a matplotlib figure as PNG atomically and release it."""
    return write_bytes(path, png_bytes(figure, dpi=110))


def print_whole(console: Console, renderable) -> None:
    """Print a table without cutting its columns. A terminal keeps its width; piped or logged output
    (where rich assumes 80 columns and would cut ``training time`` to ``traini…``) gets the width the
    table needs."""
    if console.is_terminal:
        console.print(renderable)
        return
    needed = Measurement.get(console, console.options.update(width=100_000), renderable).maximum
    width = console.width
    console.width = max(width, needed)
    try:
        console.print(renderable)
    finally:
        console.width = width


def print_plain(console: Console, text: str, style: str | None = None) -> None:
    """Print text as written, in one style: a path is never wrapped across lines (piped output is 80
    columns) nor read as rich markup (a folder named ``[red]``), and characters a terminal would act on
    within a line are shown escaped."""
    lines = "\n".join(escaped(line) for line in text.split("\n"))
    console.print(lines, style=style, markup=False, highlight=False, soft_wrap=True)


def escaped(text: str) -> str:
    """Text with every character a terminal would act on (ESC sequences that clear the screen or write the
    clipboard, a newline that forges a table row) written as its Python escape, e.g. ``\\x1b``, ``\\n``."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def figure_text(text) -> str:
    """A name for matplotlib text: escaped as for a terminal (a control character shows as its escape, e.g.
    ``\\x1b``, not as a glyph the font lacks), and each ``$`` as ``\\$``, which matplotlib shows as ``$``
    instead of reading the text between two of them as math (torchmetrics' plots reset any rc setting)."""
    return escaped(str(text)).replace("$", r"\$")


def literal_text(text) -> Text:
    """A name that came from a file, folder or config, as a rich table cell or title: escaped, and never
    read as rich markup."""
    return Text(escaped(str(text)))


def markdown_escaped(text) -> str:
    """Text for a Markdown file (report.md, comparison.md) that reads as written on GitHub: escaped for a
    terminal (a line break would forge a table row), then HTML's ``<>&``, Markdown's marks and what would open
    a block, so it adds no markup, table cell, list, image or link, not even an automatic one."""
    text = MARKDOWN_MARKS.sub(r"\\\1", html.escape(escaped(str(text)), quote=False))
    return STRUCTURE_MARKS.sub(_as_plain_text, text)


def _as_plain_text(mark: re.Match) -> str:
    """A mark made plain text: backslash-escaped; a leading space as its entity; an ``@`` followed by an empty
    HTML comment (shown as nothing), as GitHub merges the text around a backslash before it finds addresses."""
    if mark[0] == "@":
        return "@<!-- -->"
    return f"&#{ord(mark[0])};" if mark[0].isspace() else mark[0][:-1] + "\\" + mark[0][-1]


def spreadsheet_safe(cell):
    """A CSV cell a spreadsheet shows as written: text that would start a formula gets a leading apostrophe;
    numbers are left as numbers."""
    return f"'{cell}" if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) else cell


def csv_text(header: list[str], rows) -> str:
    """A CSV file's text in the csv module's default dialect (CRLF line ends, so a cell holding a bare CR or LF
    is quoted and cannot split its row), every text cell spreadsheet-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    return buffer.getvalue()


def output_location(out: str | Path, folder: bool, option: str = "--out") -> Path:
    """``--out`` (or the ``option`` named) checked before any work, so that a wrong one costs no evaluation and
    leaves nothing behind: a folder to write into (``folder``) must not be a file, a file to write must not be
    a folder, and neither may lie under a file or in a folder this user cannot write (each was a traceback
    after the work, from mkdir or the final rename)."""
    path = user_path(out)
    if folder and path.exists() and not path.is_dir():
        raise CifarBenchError(f"{option} {path} is a file, not a folder: name a folder for the reports")
    if not folder and path.is_dir():
        raise CifarBenchError(f"{option} {path} is a folder: name the file to write, e.g. {path / 'predictions.csv'}")
    existing = path.absolute().parent
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise CifarBenchError(f"{option} {path} lies under {existing}, which is not a folder: choose another {option}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CifarBenchError(f"{option} {path} lies in {existing}, which is not writable: choose another {option}")
    return path


def place(path: str | Path, folder: str | Path) -> str:
    """How written output names a file or folder: relative to ``folder`` (the one the command reads or writes)
    where it lies inside it, else by its name alone; never as an absolute path of the machine it ran on."""
    path, folder = Path(path), Path(folder)  # taken as written: a folder found named "~x" is no home
    pairs = [(path.absolute(), folder.absolute())]
    with suppress(OSError, RuntimeError, ValueError):  # a link loop or a NUL on the way: named as written
        pairs.append((path.resolve(), folder.resolve()))
    for mine, base in pairs:
        if mine.is_relative_to(base):
            return mine.relative_to(base).as_posix() or "."
    return pairs[-1][0].name or path.name


def first_link(path: Path, below: Path) -> Path | None:
    """The first component of ``path``, from ``below`` down, that is a link (None if none is)."""
    current = below
    for part in path.relative_to(below).parts:
        current = current / part
        if current.is_symlink():
            return current
    return None


def refuse_links(folders, below: Path) -> None:
    """One error if a component of a folder in ``folders``, from ``below`` down, is a link: a link planted
    there (a run's ``evaluation/`` or ``checkpoints/`` pointing elsewhere) would take the writes out of it.
    Checked before any work, by path; every later write into those folders then walks down from ``below``
    itself and refuses a link swapped in meanwhile (``io.write_below``, ``io.atomic_file``)."""
    for folder in folders:
        link = first_link(folder, below)
        if link is not None:
            raise link_refused(link)
    write_below(below, folders)


def unlinked_folder(folder: Path, below: Path) -> Path:
    """``folder``, created where missing, with no link among its components from ``below`` down."""
    refuse_links((folder,), below)
    try:
        os.close(open_folder(folder))
    except OSError as error:
        raise unwritable(folder, error) from error
    return folder


def copy_small_file(source: Path, below: Path, target: Path, reader=read_small_bytes) -> Path:
    """Copy a regular file of at most 16 MB (``read_small_bytes``, or ``reader``'s view of it), reached from
    ``below`` through no link, to ``target`` as a new file: a link at the source would copy a file from
    anywhere, one at the target would be written through."""
    link = first_link(source, below)
    if link is not None:
        raise CifarBenchError(f"{link} is a link: refusing to copy what it points to; remove it and run again")
    try:
        content = reader(source)
    except OSError as error:
        raise CifarBenchError(f"cannot copy {source} ({error}): remove it and run again")
    return write_bytes(target, content)
