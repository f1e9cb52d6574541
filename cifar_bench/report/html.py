"""The report's blocks as one self-contained HTML page: inline CSS, figures as PNG data URIs, no script,
nothing fetched from anywhere; printable (a figure or table is not cut across pages where avoidable).

Every text is shown as written: characters a terminal would act on escaped (``output.escaped``), then
HTML-escaped, so a run or class name cannot add markup, a link or a script to the page.
"""

from __future__ import annotations

import base64
import html

from cifar_bench.output import escaped

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b; max-width: 62rem;
       margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.8rem; margin-bottom: .2rem; } h2 { border-bottom: 2px solid #ccc; margin-top: 2.5rem; }
h3 { margin-top: 1.6rem; }
table { border-collapse: collapse; margin: .6rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: .2rem .5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f2f2f2; }
pre { background: #f7f7f7; padding: .6rem; overflow-x: auto; font-size: 13px; }
figure { margin: .8rem 0; } img { max-width: 100%; height: auto; } figcaption { color: #555; font-size: 13px; }
nav ol { columns: 2; } .verdict { font-weight: bold; }
@media print { body { margin: 0; max-width: none; } figure, table, pre { break-inside: avoid; }
               h2, h3 { break-after: avoid; } nav { display: none; } }
"""


def text(value) -> str:
    return html.escape(escaped(str(value)), quote=True)


def block_html(block: dict) -> str:
    kind = block["kind"]
    if kind == "heading":
        anchor = f' id="{text(block["anchor"])}"' if block.get("anchor") else ""
        return f"<h{block['level']}{anchor}>{text(block['text'])}</h{block['level']}>"
    if kind == "paragraph":
        strong = f'<span class="verdict">{text(block["strong"])}</span> ' if block.get("strong") else ""
        return f"<p>{strong}{text(block['text'])}</p>"
    if kind == "list":
        return "<ul>" + "".join(f"<li>{text(item)}</li>" for item in block["items"]) + "</ul>"
    if kind == "table":
        head = "".join(f"<th>{text(cell)}</th>" for cell in block["headings"])
        body = "".join("<tr>" + "".join(f"<td>{text(cell)}</td>" for cell in row) + "</tr>" for row in block["rows"])
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if kind == "pre":
        return f"<pre>{text(block['text'])}</pre>"
    if kind == "figure":
        source = "data:image/png;base64," + base64.b64encode(block["png"]).decode("ascii")
        caption = text(block["caption"])
        return f'<figure><img src="{source}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'
    raise ValueError(f"unknown block kind {kind!r}")


def render_html(title: str, blocks: list[dict]) -> str:
    """The whole page; a contents list of the chapters (level-2 headings with an anchor) heads it."""
    chapters = [block for block in blocks if block["kind"] == "heading" and block["level"] == 2 and block.get("anchor")]
    contents = "".join(f'<li><a href="#{text(block["anchor"])}">{text(block["text"])}</a></li>' for block in chapters)
    body = "\n".join(block_html(block) for block in blocks)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{text(title)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n<h1>{text(title)}</h1>\n<nav><ol>{contents}</ol></nav>\n{body}\n</body></html>\n"
    )
