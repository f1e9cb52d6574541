"""docs/development.md's layout stays true: it names every module of the package and of the benchmark."""

from __future__ import annotations

import re

from conftest import REPO

LAYOUT = (REPO / "docs" / "development.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]


def modules() -> list[str]:
    """Every source file and template, less the package markers (``__init__.py``, the package's ``__main__.py``)."""
    found = [
        *(REPO / "cifar_bench").rglob("*.py"),
        *(REPO / "cifar_bench").rglob("*.j2"),
        *(REPO / "benchmarks").glob("*.py"),
    ]
    return sorted(
        str(path.relative_to(REPO))
        for path in found
        if path.name != "__init__.py" and (path.name != "__main__.py" or path.parent.name == "benchmarks")
    )


def test_the_layout_names_every_module():
    named = set(re.findall(r"[\w/.]+\.(?:py|j2)", LAYOUT))
    unnamed = [module for module in modules() if not any(module.endswith("/" + name) for name in named)]
    assert unnamed == []
