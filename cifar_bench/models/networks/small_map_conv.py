"""A 3x3 convolution that runs as one dense matrix product on 2x2 maps, where im2col kernels waste the machine.

VGG16's conv5 block sees 2x2 maps at CIFAR's 32x32. There, with padding 1, every output position's 3x3 window
covers all four input positions, so the layer is a dense linear map from the 4x512 inputs to the 4x512
outputs whose 4x4 blocks are the kernel's taps: ``out[i, j] = sum over (p, q) of W[:, :, p - i + 1, q - j + 1]
x[p, q]``. Built from the weight each step (a gather, differentiable), it is one matrix product forward and
two backward, at the matmul's speed; oneDNN's convolution backward on 2x2 maps ran at a few percent of it.
The same multiply-adds in the same precision (the zero padding's products left out), so outputs match the
convolution's to rounding; any other map size runs the ordinary convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# TAPS[a][b]: the kernel tap (row-major in the 3x3 window) joining input position b to output position a, both
# (row, column) of a 2x2 map in row-major order.
TAPS = [[(p - i + 1) * 3 + (q - j + 1) for p in (0, 1) for q in (0, 1)] for i in (0, 1) for j in (0, 1)]


class DenseTaps(torch.autograd.Function):
    """(out, 9, in) kernel taps -> the (4 x out, 4 x in) matrix, block [a, b] = tap TAPS[a][b]; backward sums each
    tap's blocks (16 block copies each way: a gather's index_put backward took several times as long)."""

    @staticmethod
    def forward(ctx, taps: torch.Tensor) -> torch.Tensor:
        out_channels, _, in_channels = taps.shape
        matrix = taps.new_empty(4, out_channels, 4, in_channels)
        for a, row in enumerate(TAPS):
            for b, tap in enumerate(row):
                matrix[a, :, b] = taps[:, tap]
        return matrix.view(4 * out_channels, 4 * in_channels)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out_channels, in_channels = grad.shape[0] // 4, grad.shape[1] // 4
        blocks = grad.reshape(4, out_channels, 4, in_channels)
        taps = grad.new_zeros(out_channels, 9, in_channels)
        for a, row in enumerate(TAPS):
            for b, tap in enumerate(row):
                taps[:, tap] += blocks[a, :, b]
        return taps


class SmallMapConv2d(nn.Conv2d):
    """``nn.Conv2d`` (3x3, stride 1, padding 1; same parameters and state-dict keys) with the dense path on 2x2 maps.

    A frozen layer's dense matrix is kept between steps, rebuilt when the compute dtype or the weight changes as
    PyTorch counts it (its version: ``load_state_dict``, in-place writes under ``no_grad``); a run while trainable
    drops it, since fused optimizers (the package's) update weights without counting. Writes through ``.data``
    are never counted: rebuild with ``requires_grad_(True)`` and a forward, or clear ``_frozen_matrix``."""

    _frozen_matrix: tuple[tuple, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (2, 2):
            return super().forward(x)
        batch = x.shape[0]
        rows = x.permute(0, 2, 3, 1).reshape(batch, 4 * self.in_channels)  # a view for channels-last input
        bias = None if self.bias is None else self.bias.repeat(4)
        out = F.linear(rows, self.dense_matrix(x.device.type), bias)
        return out.reshape(batch, 2, 2, self.out_channels).permute(0, 3, 1, 2)  # channels-last strides

    def dense_matrix(self, device_type: str) -> torch.Tensor:
        """The (4 x out, 4 x in) matrix, in the autocast dtype where autocast is on (cast before the gather: the
        weight is half the matrix's size)."""
        weight = self.weight
        autocast = torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)
        dtype = torch.get_autocast_dtype(device_type) if autocast else weight.dtype
        stamp = (weight._version, weight.data_ptr(), dtype, torch.is_inference_mode_enabled())
        frozen = not weight.requires_grad
        if not frozen:  # trained from here on, perhaps by a fused optimizer, whose steps leave the version as it was
            self._frozen_matrix = None
        if frozen and self._frozen_matrix is not None and self._frozen_matrix[0] == stamp:
            return self._frozen_matrix[1]
        weight = weight.to(dtype)
        matrix = DenseTaps.apply(weight.permute(0, 2, 3, 1).reshape(self.out_channels, 9, self.in_channels))
        if frozen:
            self._frozen_matrix = (stamp, matrix)
        return matrix


def small_map_convolutions(layers: nn.Sequential) -> nn.Sequential:
    """``layers`` with each 3x3, stride-1, padding-1, ungrouped ``nn.Conv2d`` made a ``SmallMapConv2d`` in place."""
    for layer in layers:
        if (
            type(layer) is nn.Conv2d
            and layer.kernel_size == (3, 3)
            and layer.stride == (1, 1)
            and layer.padding == (1, 1)
            and layer.dilation == (1, 1)
            and layer.groups == 1
            and layer.padding_mode == "zeros"
        ):
            layer.__class__ = SmallMapConv2d
    return layers
