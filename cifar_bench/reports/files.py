"""Report files written atomically, so a reader never sees half a file after an interruption."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: Path, content) -> Path:
    """Write ``content`` as indented JSON under a temporary name, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(content, indent=2) + "\n")
    partial.replace(path)
    return path
