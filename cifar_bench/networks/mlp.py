"""The study's multilayer perceptron, as a plain nn.Module."""

from __future__ import annotations

from torch import nn


class MLP(nn.Module):
    """Three fully connected layers on the flattened 3x32x32 image: 3072 -> 512 -> 256 -> 10.

    An MLP sees no spatial structure, so width buys little past a few hundred units; two ReLU hidden
    layers that halve in width keep it at 1.7M parameters, small enough to train in minutes on a CPU.
    """

    def __init__(self, hidden: tuple[int, int] = (512, 256), num_classes: int = 10, dropout: float = 0.0) -> None:
        super().__init__()
        first, second = hidden
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(3 * 32 * 32, first),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(first, second),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(second, num_classes),
        )

    def forward(self, images):
        return self.layers(images)
