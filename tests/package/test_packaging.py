"""The package as a user installs it: a wheel built from this checkout (setup.cfg, pyproject.toml), installed
into a folder of its own, holds the whole package and its configs but not the benchmark, and runs a model by
name from an empty folder, with no checkout to find its configs in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, write_binary_version

from cifar_bench.configs import model_names

pytestmark = pytest.mark.slow

# What a build reads: everything but version control, environments, data and outputs (top-level folders
# only: cifar_bench/data is the package's own).
NOT_BUILT_FROM = (".git", ".venv", ".wt", "data", "lightning_logs", "results", "bench", "reports", "build")


def not_built_from(folder: str, names: list[str]) -> list[str]:
    """``shutil.copytree``'s ignore: caches, egg-info, and the top-level folders above."""
    top = Path(folder) == REPO
    return [
        name
        for name in names
        if name == "__pycache__" or name.endswith(".egg-info") or (top and name in NOT_BUILT_FROM)
    ]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel, built offline from a copy of the checkout (a build writes build/ and egg-info into its
    source), installed with pip into a folder of its own."""
    root = tmp_path_factory.mktemp("packaging")
    source = shutil.copytree(REPO, root / "source", ignore=not_built_from)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(root / "dist"), str(source)]
    built = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (root / "dist").glob("cifar_bench-*.whl")
    target = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)], check=True)
    return target


def test_the_wheel_carries_base_yaml_and_every_model_config(installed):
    shipped = sorted(path.name for path in (installed / "cifar_bench" / "configs").glob("*.yaml"))
    assert shipped == sorted(["base.yaml", *(f"{name}.yaml" for name in model_names())])
    spaces = sorted(path.name for path in (installed / "cifar_bench" / "configs" / "spaces").glob("*.yaml"))
    assert spaces == sorted(path.name for path in (REPO / "configs" / "spaces").glob("*.yaml"))  # sweep's defaults


def test_the_wheel_carries_the_reports_templates_and_renders_with_them(installed, tmp_path):
    shipped = sorted(path.name for path in (installed / "cifar_bench" / "report" / "templates").iterdir())
    assert shipped == ["report.html.j2", "report.md.j2"]
    render = "from cifar_bench.report.render import render_markdown; print(render_markdown('A *title*', [], 'f')[0])"
    environment = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run(
        [sys.executable, "-c", render], cwd=tmp_path, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout == "# A \\*title\\*\n\n", result.stderr[-3000:]


def test_the_wheel_carries_every_file_of_the_package_and_not_the_benchmark(installed):
    def files(package: Path) -> list[str]:
        every = (path.relative_to(package) for path in package.rglob("*") if path.is_file())
        return sorted(str(path) for path in every if "__pycache__" not in path.parts and path.parts[0] != "configs")

    assert files(installed / "cifar_bench") == files(REPO / "cifar_bench")
    assert not (installed / "benchmarks").exists()


def test_an_installed_copy_trains_a_model_by_name_from_an_empty_folder(installed, tmp_path):
    data = tmp_path / "data"
    write_binary_version(data)
    empty = tmp_path / "empty"
    empty.mkdir()
    environment = {**os.environ, "PYTHONPATH": str(installed)}
    where = subprocess.run(
        [sys.executable, "-c", "import cifar_bench; print(cifar_bench.__file__)"],
        cwd=empty, env=environment, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(installed), "the checkout, not the installed copy, was imported"
    fit = [
        sys.executable, "-m", "cifar_bench", "fit", "--config", "mlp",
        "--trainer.fast_dev_run", "1", "--trainer.enable_progress_bar", "false",
        "--data.data_dir", str(data), "--data.download", "false", "--data.val_size", "20", "--data.batch_size", "8",
    ]  # fmt: skip
    result = subprocess.run(fit, cwd=empty, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MLPClassifier: 3 weight layers" in result.stdout
    assert sorted(path.name for path in empty.iterdir()) == [], "a dry run writes nothing into the current folder"
