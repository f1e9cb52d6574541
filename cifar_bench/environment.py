"""What a result was produced with: the machine, the package versions and the code's commit; and the
precision this machine runs fast, the default where no config sets one."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import pytorch_lightning as pl
import torch
import torchmetrics
import torchvision

from cifar_bench.configs import CONFIG_DIR

SOURCE = Path(__file__).resolve().parent
# A run's code: the package and its model configs. Evidence a study copies into a tracked results/ folder, and
# docs or tests edited while it trains, change no run.
CODE = (SOURCE, CONFIG_DIR)


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def commit() -> str | None:
    """The git commit of the package's source, with ``+changes`` when the working tree's code (``CODE``)
    differs from it."""

    def git(*words: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *words], cwd=SOURCE, capture_output=True, text=True, timeout=10)

    try:
        head, dirty = (
            git("rev-parse", "HEAD"),
            git("status", "--porcelain", "--untracked-files=no", "--", *map(str, CODE)),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    changed = dirty.returncode != 0 or dirty.stdout.strip()  # a status git could not give is no clean tree
    return head.stdout.strip() + ("+changes" if changed else "")


def machine() -> dict:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "huge_pages": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightning": pl.__version__,
        "torchmetrics": torchmetrics.__version__,
        "platform": platform.platform(),
    }


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware: oneDNN reports bf16 on every AVX-512 CPU, but without
    AVX512_BF16 or AMX emulates it, slower than fp32. On other architectures oneDNN's answer is all there is."""
    if torch.cpu._is_avx2_supported():  # x86
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def default_precision(accelerator: str = "auto") -> str:
    """bf16 autocast where the hardware that will run computes bf16 natively (1.5-2x faster than fp32), fp32
    elsewhere (emulated bf16 is 4-60x slower); used only where no config or flag sets ``trainer.precision``."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    if accelerator in ("auto", "cpu"):
        return "bf16-mixed" if cpu_has_native_bf16() else "32-true"
    return "32-true"  # another accelerator (mps, tpu...): Lightning's own default
