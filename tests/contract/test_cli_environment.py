"""The command, not the library, turns on transparent huge pages for PyTorch's CPU tensors: importing
cifar_bench changes no environment variable, and ``python -m cifar_bench`` sets THP_MEM_ALLOC_ENABLE
early enough for torch to use it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

THP = "THP_MEM_ALLOC_ENABLE"
SYSTEM_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def run_python(code: str) -> str:
    """``code`` in a fresh interpreter with this checkout on the path and THP_MEM_ALLOC_ENABLE unset; its output."""
    environment = {name: value for name, value in os.environ.items() if name != THP}
    environment["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_importing_the_package_leaves_the_environment_unchanged():
    code = (
        "import os; before = dict(os.environ)\n"
        "import cifar_bench, cifar_bench.cli, cifar_bench.training.lightning_cli, cifar_bench.study\n"
        "print(dict(os.environ) == before)"
    )
    assert run_python(code).split() == ["True"]


# After `python -m cifar_bench compare --help` has run: torch's first allocation of a large tensor. The
# CLI module must not import torch itself, or the variable could come after torch's first allocation.
AFTER_THE_COMMAND = f"""
import atexit, os, sys
import cifar_bench.cli
print("torch imported by the CLI module:", "torch" in sys.modules)

def report():
    import torch
    kept = torch.ones(64 * 2**20 // 4)  # held while its pages are counted
    huge = [line.split()[1] for line in open("/proc/self/smaps_rollup") if line.startswith("AnonHugePages")]
    print("{THP}:", os.environ.get("{THP}"), "huge pages kB:", huge[0] if huge else "unknown")

atexit.register(report)
sys.argv = ["cifar-bench", "compare", "--help"]
import runpy
runpy.run_module("cifar_bench", run_name="__main__")
"""


@pytest.mark.slow
def test_the_command_sets_it_before_torch_allocates_and_torch_then_uses_huge_pages():
    lines = run_python(AFTER_THE_COMMAND).splitlines()
    assert "torch imported by the CLI module: False" in lines
    (report,) = [line for line in lines if line.startswith(THP)]
    words = report.split()
    assert words[1] == "1"
    # Only where the kernel gives huge pages on request (madvise) do they show PyTorch asked for them.
    if SYSTEM_THP.is_file() and "[madvise]" in SYSTEM_THP.read_text() and words[-1] != "unknown":
        assert int(words[-1]) > 0
