"""The study's multilayer perceptron, as a plain nn.Module."""

from __future__ import annotations

from torch import nn

from cifar_bench.models.networks.dropout import VectorisedDropout
from cifar_bench.models.networks.init import init_layers


def fully_connected(in_features: int, hidden: tuple[int, ...], num_classes: int, dropout: float) -> nn.Sequential:
    """Flatten, then Linear + ReLU + Dropout per hidden width, then the output Linear."""
    layers: list[nn.Module] = [nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True), VectorisedDropout(dropout)]
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """Three fully connected layers on the flattened 3x32x32 image: 3072 -> 512 -> 256 -> 10.

    An MLP sees no spatial structure, so width buys little past a few hundred units; two ReLU hidden
    layers that halve in width keep it at 1.7M parameters, small enough to train in minutes on a CPU.
    """

    def __init__(self, hidden: tuple[int, int] = (512, 256), num_classes: int = 10, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = fully_connected(3 * 32 * 32, hidden, num_classes, dropout)
        init_layers(self.modules())

    def forward(self, images):
        return self.layers(images)
