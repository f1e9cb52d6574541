"""The package's imports run one way, each layer importing only those before it: errors, io, environment,
configs, run_folder -> data -> models (networks inside) -> features -> figures -> training -> evaluation -> sweep -> report
-> study -> cli; no import circle, and no module much over 300 lines: read off the source, not run."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "cifar_bench"
# Lower first; a module may import only from its own layer or a lower one.
LAYERS = [
    {
        "cifar_bench",
        "cifar_bench.errors",
        "cifar_bench.io",
        "cifar_bench.output",
        "cifar_bench.environment",
        "cifar_bench.configs",
        "cifar_bench.arguments",
        "cifar_bench.run_folder",
    },
    {"cifar_bench.data"},
    {"cifar_bench.models"},
    {"cifar_bench.features"},
    {"cifar_bench.figures"},
    {"cifar_bench.training"},
    {"cifar_bench.evaluation"},
    {"cifar_bench.sweep"},
    {"cifar_bench.report"},
    {"cifar_bench.study"},
    {"cifar_bench.cli", "cifar_bench.__main__"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of the longest listed prefix of a module name."""
    candidates = [
        (len(prefix), index)
        for index, layer in enumerate(LAYERS)
        for prefix in layer
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(candidates)[1]


def package_imports(path: Path) -> set[str]:
    """cifar_bench modules imported anywhere in a file (functions included)."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cifar_bench"):
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names if alias.name.startswith("cifar_bench"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_PATH.fullmatch(node.value):
            imported.add(node.value)  # the CLI imports its commands' modules by name
    return imported


MODULE_PATH = re.compile(r"cifar_bench(\.[a-z_0-9]+)+")


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: module_name(path))
def test_no_module_imports_from_a_layer_above_its_own(path):
    own = layer_of(module_name(path))
    above = sorted(module for module in package_imports(path) if layer_of(module) > own)
    assert not above, f"{module_name(path)} imports {above}"


def modules_imported(path: Path) -> set[str]:
    """The package's modules a file imports: ``from pkg import sub`` counts as importing ``pkg.sub``."""
    known = {module_name(source) for source in SOURCES}
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cifar_bench"):
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    return imported & known


def test_no_import_circle():
    """No chain of imports (function-level ones included) leads from a module back to itself."""
    graph = {module_name(path): modules_imported(path) - {module_name(path)} for path in SOURCES}
    state: dict[str, str] = {}

    def circle_from(module: str, chain: list[str]) -> list[str] | None:
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                return [*chain, module, imported]
            if imported not in state and (found := circle_from(imported, [*chain, module])):
                return found
        state[module] = "done"
        return None

    circles = [found for module in sorted(graph) if module not in state and (found := circle_from(module, []))]
    assert not circles, " -> ".join(circles[0])


def attributes_read(path: Path) -> set[str]:
    """Every attribute name a file reads (``x.name``), ``getattr(x, "name")`` included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
        ):
            names.add(node.args[1].value)
    return names


@pytest.mark.parametrize(
    "folder, forbidden",
    [("data", {"lightning_module", "model"}), ("models", {"datamodule"})],
    ids=["the data layer never asks the Trainer for the model", "the models never ask the Trainer for the data"],
)
def test_the_data_layer_and_the_models_do_not_reach_each_other_through_the_trainer(folder, forbidden):
    """No import joins them (see above), and no ``trainer.datamodule`` or ``trainer.lightning_module`` either."""
    reached = {
        path.name: sorted(attributes_read(path) & forbidden) for path in sorted((PACKAGE / folder).rglob("*.py"))
    }
    assert not {name: attributes for name, attributes in reached.items() if attributes}


@pytest.fixture(scope="module")
def formatted_lines(tmp_path_factory) -> dict[Path, int]:
    """Line counts of the package's modules as ``ruff format`` writes them (what ``make lint`` checks they are),
    so that a module cannot pass by packing its code into long lines."""
    copy = tmp_path_factory.mktemp("formatted") / "cifar_bench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    formatting = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--config", str(REPO / "pyproject.toml"), str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert formatting.returncode == 0, formatting.stderr
    return {path: len((copy / path.relative_to(PACKAGE)).read_text().splitlines()) for path in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: module_name(path))
def test_no_module_is_much_over_300_lines_once_formatted(path, formatted_lines):
    assert formatted_lines[path] <= 320, f"{module_name(path)}: {formatted_lines[path]} lines formatted"
