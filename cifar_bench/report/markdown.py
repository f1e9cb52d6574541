"""The report's blocks as Markdown for GitHub, its figures as PNG files in a folder beside it.

Text is escaped (``output.escaped``, then HTML's ``<>&`` and Markdown's own marks) so a run or class
name reads as written and cannot forge a link, an image, a table cell or markup.
"""

from __future__ import annotations

import html
import re

from cifar_bench.output import escaped

MARKDOWN_MARKS = re.compile(r"([\\`*_\[\]|#])")


def text(value) -> str:
    return MARKDOWN_MARKS.sub(r"\\\1", html.escape(escaped(str(value)), quote=False))


def block_markdown(block: dict, folder: str) -> str:
    kind = block["kind"]
    if kind == "heading":
        anchor = f'<a id="{block["anchor"]}"></a>\n' if block.get("anchor") else ""
        return anchor + "#" * block["level"] + " " + text(block["text"])
    if kind == "paragraph":
        strong = f"**{text(block['strong'])}** " if block.get("strong") else ""
        return strong + text(block["text"])
    if kind == "list":
        return "\n".join(f"- {text(item)}" for item in block["items"])
    if kind == "table":
        headings = [text(cell) or " " for cell in block["headings"]]
        lines = ["| " + " | ".join(headings) + " |", "|" + "|".join(" --- " for _ in headings) + "|"]
        return "\n".join(lines + ["| " + " | ".join(text(cell) for cell in row) + " |" for row in block["rows"]])
    if kind == "pre":
        # Fenced by more backticks than any run in the text, so none can close it; inside, nothing is markup.
        content = "\n".join(escaped(line) for line in block["text"].rstrip("\n").split("\n"))
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", content)), default=0))
        return f"{fence}text\n{content}\n{fence}"
    if kind == "figure":
        return f"![{text(block['caption'])}]({folder}/{block['name']})\n\n*{text(block['caption'])}*"
    raise ValueError(f"unknown block kind {kind!r}")


def render_markdown(title: str, blocks: list[dict], folder: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown text, and the figure files it links (name: PNG bytes) to put in ``folder`` beside it."""
    body = "\n\n".join(block_markdown(block, folder) for block in blocks)
    figures = {block["name"]: block["png"] for block in blocks if block["kind"] == "figure"}
    return f"# {text(title)}\n\n{body}\n", figures
