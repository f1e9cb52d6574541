"""The report's content model: a list of plain blocks (headings, paragraphs, lists, tables, preformatted
lines, figures as PNG bytes) that the templates of ``render`` turn into report.html and report.md; and the
reading of a run folder's files for it, trusting none of them (bounded reads, nothing reached through a link).

Text in a block is as it came (a model or class name from a folder may hold anything): each template's
escaper makes it safe for its format.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from cifar_bench.errors import CifarBenchError
from cifar_bench.io import read_small_bytes
from cifar_bench.output import first_link, png_bytes
from cifar_bench.run_folder import RunFolder, read_config

REPORT_DPI = 80  # figures embedded in the page: sharp enough on screen and on paper, small enough to embed


def heading(text: str, level: int = 2, anchor: str | None = None) -> dict:
    return {"kind": "heading", "level": level, "text": text, "anchor": anchor}


def paragraph(text: str, strong: str | None = None) -> dict:
    """A paragraph, optionally opening with a word or two in bold (a verdict)."""
    return {"kind": "paragraph", "text": text, "strong": strong}


def bullets(items: list[str]) -> dict:
    return {"kind": "list", "entries": list(items)}


def table(headings: list[str], rows: list[list]) -> dict:
    return {"kind": "table", "headings": list(headings), "rows": [[str(cell) for cell in row] for row in rows]}


def preformatted(text: str) -> dict:
    """Text shown as written, in a fixed-width font, line by line."""
    return {"kind": "pre", "lines": text.rstrip("\n").split("\n")}


def figure(name: str, drawn, caption: str) -> dict:
    """A figure, ``drawn``: a matplotlib figure (``figure_png``) or PNG bytes; ``name`` is its file's name beside
    report.md (made of safe characters by the caller)."""
    png = drawn if isinstance(drawn, bytes) else figure_png(drawn)
    return {"kind": "figure", "name": name, "png": png, "caption": caption}


def figure_png(drawn) -> bytes:
    """A matplotlib figure as PNG bytes (then closed)."""
    from PIL import Image

    # A 256-colour palette: plots hold few colours, and the page embeds every figure (about a third the bytes).
    with Image.open(io.BytesIO(png_bytes(drawn, REPORT_DPI)), formats=["PNG"]) as image:
        paletted = image.convert("RGB").quantize(256)
    buffer = io.BytesIO()
    paletted.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def percent(correct: int, images: int) -> str:
    """The study's form of an accuracy: ``53.44% (2672/5000)``."""
    return f"{correct / images:.2%} ({correct}/{images})" if images else "-"


def run_file(directory: Path, path: Path, read: Callable[[Path], object] = read_small_bytes):
    """A run's file as ``read`` gives it (its bytes by default): None where the report goes on without it,
    when it is missing, refused by the reader, or reached through a link below ``directory`` (the folder
    the report reads)."""
    try:
        if first_link(path.absolute(), directory.absolute()) is not None:
            return None
        return read(path)
    except (CifarBenchError, OSError, ValueError):
        return None


def run_config(directory: Path, run: RunFolder) -> dict | None:
    """A run's config.yaml (None when missing or unreadable)."""
    return run_file(directory, run.config_file, lambda path: read_config(path, "the report leaves it out"))
