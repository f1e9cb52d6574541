"""The weight initialisation every network of the package starts from.

PyTorch's default (uniform, scaled for a linear activation) leaves a ReLU network without BatchNorm
with conv-layer gradients hundreds of times smaller, relative to the weights, than its head's: the
plain 9-layer CNN then sits near chance for epochs. He (Kaiming) initialisation keeps the signal's
scale through each ReLU layer, as torchvision does for VGG.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def init_layer(layer: nn.Module, output_layer: bool = False) -> None:
    """He-normal for a conv (fan_out, as torchvision's VGG) or a hidden linear layer (fan_in); the output
    layer a small normal (std 0.01) so the first logits are near zero; zero biases, BatchNorm as identity."""
    if isinstance(layer, nn.Conv2d):
        nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(layer, nn.Linear) and output_layer:
        nn.init.normal_(layer.weight, 0.0, 0.01)
    elif isinstance(layer, nn.Linear):
        nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
    elif isinstance(layer, nn.BatchNorm2d):
        nn.init.ones_(layer.weight)
    else:
        return
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def init_layers(layers: Iterable[nn.Module]) -> None:
    """Initialise weight layers in network order; the last Linear is the output layer."""
    layers = [layer for layer in layers if isinstance(layer, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))]
    linear = [layer for layer in layers if isinstance(layer, nn.Linear)]
    for layer in layers:
        init_layer(layer, output_layer=bool(linear) and layer is linear[-1])
