"""The study's 9-layer CNN (Part 4), and the same network with BatchNorm and Dropout (Part 5)."""

from __future__ import annotations

from cifar_bench.arguments import FloatFrom0Below1
from cifar_bench.models.base import CifarClassifier
from cifar_bench.models.networks import ConvNet9


class CNNClassifier(CifarClassifier):
    """Six convolutions and three linear layers; ``batch_norm``/``dropout`` make the cnn_bn_do variant.

    Args:
        widths: channels of the three convolution blocks (two 3x3 convolutions each).
        hidden: widths of the two hidden linear layers.
        batch_norm: BatchNorm after every convolution (the cnn_bn_do variant).
        dropout: Dropout probability after every pooling step and hidden linear layer (0 for the plain CNN).
        channels_last: keep the convolution weights NHWC, the faster layout on CPU (oneDNN) and GPU.
    """

    def __init__(
        self,
        widths: tuple[int, int, int] = (32, 64, 128),
        hidden: tuple[int, int] = (512, 256),
        batch_norm: bool = False,
        dropout: FloatFrom0Below1 = 0.0,
        channels_last: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.net = ConvNet9(widths=widths, hidden=hidden, batch_norm=batch_norm, dropout=dropout)
        self.use_channels_last(channels_last)
