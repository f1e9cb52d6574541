"""The study's 9-weight-layer CNN, with and without BatchNorm and Dropout, as one plain nn.Module."""

from __future__ import annotations

from torch import nn

from cifar_bench.models.networks.dropout import VectorisedDropout
from cifar_bench.models.networks.init import init_layers
from cifar_bench.models.networks.mlp import fully_connected


def _conv_block(in_channels: int, out_channels: int, batch_norm: bool, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for channels_in in (in_channels, out_channels):
        layers.append(nn.Conv2d(channels_in, out_channels, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.MaxPool2d(2))
    if dropout:
        layers.append(VectorisedDropout(dropout))
    return layers


class ConvNet9(nn.Module):
    """Six 3x3 convolutions in three VGG-style blocks (32 -> 16 -> 8 -> 4 pixels), then three linear layers.

    Two convolutions per resolution give each block a 5x5 receptive field before pooling, the classic
    recipe for 32x32 inputs; widths double as resolution halves so each block costs about the same.
    ``batch_norm`` adds BatchNorm after every convolution (the bias becomes redundant and is dropped);
    ``dropout`` adds Dropout after every pooling step and before each hidden linear layer. With both
    off this is the study's plain CNN; everything else is identical between the two.
    """

    def __init__(
        self,
        widths: tuple[int, int, int] = (32, 64, 128),
        hidden: tuple[int, int] = (512, 256),
        batch_norm: bool = False,
        dropout: float = 0.0,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        in_channels = 3
        for width in widths:
            blocks += _conv_block(in_channels, width, batch_norm, dropout)
            in_channels = width
        self.features = nn.Sequential(*blocks)
        self.classifier = fully_connected(in_channels * 4 * 4, hidden, num_classes, dropout)
        init_layers(self.modules())

    def forward(self, images):
        return self.classifier(self.features(images))
