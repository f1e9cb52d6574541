"""Output of the report commands: atomic file writes, and rich tables printed whole.

A reader (or a second run) never sees half a file: content goes to a hidden sibling first and is
renamed into place only once it is complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; it replaces ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        yield partial
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as partial:
        partial.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, content) -> Path:
    return write_text(path, json.dumps(content, indent=1) + "\n")


def save_figure(figure, path: Path) -> Path:
    """Write a matplotlib figure as PNG atomically and release it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as partial:
            figure.savefig(partial, format="png", dpi=110)
    finally:
        plt.close(figure)
    return path


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
