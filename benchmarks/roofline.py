"""How close a training step comes to the machine's matrix-multiply peak, measured in the same run.

Images per second say which path is faster; achieved FLOP/s against the peak says how much faster any
path could still get. The peak is that of one large square matrix product in the step's precision
(bf16 for bf16-mixed runs, fp32 for the study's loop), on the bench's device and thread count. It is
timed through ``F.linear``, the call nn.Linear makes: on a CPU without native bf16 instructions
``torch.mm`` takes a reference path in bf16 some 20x slower than the oneDNN kernels ``F.linear`` and
the convolutions use, which would make every bf16 step look faster than the machine. A step's FLOPs
are those PyTorch's FlopCounterMode counts (matrix multiplies and convolutions) over one forward and
backward of the layers a step really runs: the frozen prefix forward only, and for a store-fed
VGG16 only the layers after the store's tap.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.harness import stamp
from cifar_bench.data.sources import IMAGE_SHAPE
from cifar_bench.models import CifarClassifier
from cifar_bench.models.optimization import build_optimizer

# Images in the counted batch: FLOPs grow linearly with the batch, so a small one gives the exact per-image count.
COUNTED_IMAGES = 2
PEAK_MATRIX_SIZES = (512, 768, 1024, 1536, 2048, 3072, 4096)
PEAK_REPEATS = 5
# Long enough that timer resolution and the first call's setup vanish, short enough to measure twice per run.
PEAK_REPEAT_S = 0.1


def precision_dtype(precision: str) -> torch.dtype:
    """The dtype a Trainer precision ('bf16-mixed', '32-true', '16-mixed'...) multiplies matrices in."""
    if precision.startswith("bf16"):
        return torch.bfloat16
    if precision.startswith("16"):
        return torch.float16
    return torch.float32


def timed_products(a: torch.Tensor, b: torch.Tensor, calls: int) -> float:
    start = stamp(a.device)
    for _ in range(calls):
        F.linear(a, b)
    return stamp(a.device) - start


def matmul_peak(dtype: torch.dtype, device: torch.device) -> dict:
    """Median GFLOP/s of repeated square matrix products, each repeat sized to take at least PEAK_REPEAT_S.

    Matrices grow to the largest of PEAK_MATRIX_SIZES first (a fast GPU then repeats the product), so
    that a repeat is one large multiply wherever one is slow enough.
    """
    for size in PEAK_MATRIX_SIZES:
        a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
        timed_products(a, b, 1)  # untimed: the first call sets up kernels and memory
        calls, seconds = 1, timed_products(a, b, 1)
        if seconds >= PEAK_REPEAT_S:
            break
    while seconds < PEAK_REPEAT_S:
        calls *= 2
        seconds = timed_products(a, b, calls)
    repeats = [seconds] + [timed_products(a, b, calls) for _ in range(PEAK_REPEATS - 1)]
    flops = 2 * size**3 * calls
    return {"size": size, "calls": calls, "repeats_s": repeats, "gflop_s": flops / statistics.median(repeats) / 1e9}


class MatmulPeaks:
    """Each (device, dtype) peak measured once per bench run, when first needed, at the thread count of that moment."""

    def __init__(self) -> None:
        self.measured: dict[tuple[str, str, int], dict] = {}

    def gflop_s(self, device: torch.device, dtype: torch.dtype) -> float:
        key = (str(device), str(dtype).removeprefix("torch."), torch.get_num_threads())
        if key not in self.measured:
            self.measured[key] = matmul_peak(dtype, device)
        return self.measured[key]["gflop_s"]

    def records(self) -> list[dict]:
        return [
            {"device": device, "dtype": dtype, "threads": count, **peak}
            for (device, dtype, count), peak in self.measured.items()
        ]


@contextmanager
def without_side_effects(net: nn.Module):
    """Count in eval mode (no BatchNorm statistics updated, no dropout RNG drawn; the same multiplies), then restore each module's mode."""
    modes = [(module, module.training) for module in net.modules()]
    net.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


def training_flops_per_image(
    forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, net: nn.Module
) -> float:
    """FLOPs of one forward and backward of ``forward`` over ``inputs``, per input.

    Gradients go to ``net``'s trainable parameters through ``torch.autograd.grad``, so no ``.grad`` is
    written, and frozen layers before the first trained one cost their forward only, as in training.
    """
    trainable = [parameter for parameter in net.parameters() if parameter.requires_grad]
    with without_side_effects(net), FlopCounterMode(display=False) as counter:
        output = forward(inputs)
        torch.autograd.grad(output.float().sum(), trainable)
    return counter.get_total_flops() / len(inputs)


def counted_images(net: nn.Module) -> torch.Tensor:
    return torch.randn(COUNTED_IMAGES, *IMAGE_SHAPE, device=next(net.parameters()).device)


def network_flops_per_image(net: nn.Module) -> float:
    """Training FLOPs per image of a whole network, as the study's loop runs it."""
    return training_flops_per_image(net, counted_images(net), net)


def inference_flops_per_image(net: nn.Module) -> float:
    """FLOPs of one forward of a whole network per image, as evaluate runs it."""
    images = counted_images(net)
    with torch.no_grad(), without_side_effects(net), FlopCounterMode(display=False) as counter:
        net(images)
    return counter.get_total_flops() / len(images)


def package_flops_per_image(model: CifarClassifier) -> float:
    """Training FLOPs per image of what a package step runs: the network, or fed from a feature store the layers after it."""
    net = model.net
    if not getattr(model.hparams, "feature_store", None):
        return network_flops_per_image(net)
    with torch.no_grad(), without_side_effects(net):
        features = net.run(counted_images(net), 0, model.store_tap_end)
    return training_flops_per_image(lambda stored: net.run(stored, model.store_tap_end), features, net)


def roofline(figures: dict, flops_per_image: float, peak_gflop_s: float) -> dict:
    """Achieved GFLOP/s of a summary's median step (FLOPs per step / seconds per step) and its fraction of the peak."""
    achieved = flops_per_image * figures["batch_size"] / figures["step_s"] / 1e9
    return {
        "flops_per_image": flops_per_image,
        "gflop_s": achieved,
        "peak_gflop_s": peak_gflop_s,
        "fraction_of_peak": achieved / peak_gflop_s,
    }


def memory_floor_step_s(model: CifarClassifier, precision: str, repeats: int = 5) -> float:
    """Seconds a training step spends at least moving its trained weights, nothing computed (median of repeats).

    With fp32 weights under bf16 autocast, every step casts each trained weight to bf16, casts its bf16 gradient
    back to fp32 and runs the optimizer over weight, gradient and state: done here on copies of the trained
    weights with the model's own optimizer. A step of few FLOPs per weight (a store-fed VGG16 at batch 64) cannot
    beat this without keeping weights, gradients or optimizer state in another dtype."""
    compute_dtype = precision_dtype(precision)
    copies = [nn.Parameter(p.detach().clone()) for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer([{"params": copies}], model.hparams, copies[0].device)

    def step() -> float:
        started = stamp(copies[0].device)
        for weight in copies:
            weight.grad = weight.detach().to(compute_dtype).to(weight.dtype)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return stamp(copies[0].device) - started

    step()
    return statistics.median(step() for _ in range(repeats))
