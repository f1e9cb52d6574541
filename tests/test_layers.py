"""The package's imports run one way, data -> networks -> models -> Trainer plumbing -> reports -> CLI,
with no module much over 300 lines: read off the source, not run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cifar_bench"
# Lower first; a module may import only from its own layer or a lower one.
LAYERS = [
    {
        "cifar_bench",
        "cifar_bench.errors",
        "cifar_bench.environment",
        "cifar_bench.model_configs",
        "cifar_bench.arguments",
    },
    {"cifar_bench.data"},
    {"cifar_bench.networks", "cifar_bench.figures"},
    {"cifar_bench.models", "cifar_bench.checkpoints"},
    {"cifar_bench.callbacks", "cifar_bench.lightning_cli"},
    {"cifar_bench.reports"},
    {"cifar_bench.bench"},
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
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("cifar_bench.reports")
        ):
            imported.add(node.value)  # the CLI imports report commands by name
    return imported


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: module_name(path))
def test_no_module_imports_from_a_layer_above_its_own(path):
    own = layer_of(module_name(path))
    above = sorted(module for module in package_imports(path) if layer_of(module) > own)
    assert not above, f"{module_name(path)} imports {above}"


def test_the_data_layer_and_the_models_do_not_reach_each_other_through_the_trainer():
    datamodule = (PACKAGE / "data" / "datamodule.py").read_text()
    models = "".join(path.read_text() for path in (PACKAGE / "models").glob("*.py"))
    assert "lightning_module" not in datamodule
    assert "datamodule" not in models


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: module_name(path))
def test_no_module_is_much_over_300_lines(path):
    assert len(path.read_text().splitlines()) <= 320
