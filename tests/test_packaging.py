"""The package as a user installs it: a wheel built from this checkout, installed into a folder of its
own, runs a model by name from an empty folder, with no checkout to find its configs in."""

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

# What a build reads: everything but version control, environments, data and outputs.
NOT_BUILT_FROM = (".git", ".venv", ".wt", "data", "lightning_logs", "results", "bench", "reports", "build")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel, built offline from a copy of the checkout (a build writes build/ and egg-info into its
    source), installed with pip into a folder of its own."""
    root = tmp_path_factory.mktemp("packaging")
    source = shutil.copytree(
        REPO, root / "source", ignore=shutil.ignore_patterns(*NOT_BUILT_FROM, "__pycache__", "*.egg-info")
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(root / "dist"), str(source)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    (wheel,) = (root / "dist").glob("cifar_bench-*.whl")
    target = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)], check=True)
    return target


def test_the_wheel_carries_base_yaml_and_every_model_config(installed):
    shipped = sorted(path.name for path in (installed / "cifar_bench" / "configs").glob("*.yaml"))
    assert shipped == sorted(["base.yaml", *(f"{name}.yaml" for name in model_names())])


def test_the_wheel_carries_the_reports_templates_and_renders_with_them(installed, tmp_path):
    shipped = sorted(path.name for path in (installed / "cifar_bench" / "report" / "templates").iterdir())
    assert shipped == ["report.html.j2", "report.md.j2"]
    render = "from cifar_bench.report.render import render_markdown; print(render_markdown('A *title*', [], 'f')[0])"
    environment = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run(
        [sys.executable, "-c", render], cwd=tmp_path, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout == "# A \\*title\\*\n\n", result.stderr[-3000:]


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
