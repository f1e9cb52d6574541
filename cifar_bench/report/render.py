"""report.html and report.md rendered from the report's blocks by the Jinja2 templates beside this module.

Neither template writes a value unescaped: report.html's autoescape (after ``escaped``, so a control
character shows as ``\\x1b``), report.md's finalize ``markdown_escaped``; the filters escape what they
take themselves and mark it done (``Markup``), which is the only text the finalize lets through as is.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from cifar_bench.output import escaped, markdown_escaped


def code_block(lines: list[str]) -> Markup:
    """Lines as a Markdown code block, fenced by more backticks than any run in them (so none can close
    it); inside, nothing is markup, so they are only escaped for a terminal."""
    content = "\n".join(map(escaped, lines))
    fence = "`" * max(3, 1 + max(map(len, re.findall("`+", content)), default=0))
    return Markup(f"{fence}text\n{content}\n{fence}")


def link_target(path: str) -> Markup:
    """A figure's path as a link target: percent-encoded, so no character of it can end the link."""
    return Markup(quote(path))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _environment(autoescape: bool, finalize, **filters) -> Environment:
    environment = Environment(
        loader=PackageLoader("cifar_bench.report"),
        autoescape=autoescape,
        finalize=lambda value: value if isinstance(value, Markup) else finalize(str(value)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(filters)
    return environment


HTML = _environment(True, escaped, data_uri=data_uri).get_template("report.html.j2")
MARKDOWN = _environment(False, markdown_escaped, code_block=code_block, link_target=link_target).get_template(
    "report.md.j2"
)


def render_html(title: str, blocks: list[dict]) -> str:
    """The whole page; a contents list of the chapters (level-2 headings with an anchor) heads it."""
    return HTML.render(title=title, blocks=blocks)


def render_markdown(title: str, blocks: list[dict], folder: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown text, and the figure files it links (name: PNG bytes) to put in ``folder`` beside it."""
    figures = {block["name"]: block["png"] for block in blocks if block["kind"] == "figure"}
    return MARKDOWN.render(title=title, blocks=blocks, folder=folder), figures
