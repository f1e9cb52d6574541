"""The study's MLP (Part 3)."""

from __future__ import annotations

from cifar_bench.arguments import FloatFrom0Below1
from cifar_bench.data.augment import PROFILES
from cifar_bench.models.base import CifarClassifier
from cifar_bench.models.networks import MLP


class MLPClassifier(CifarClassifier):
    """3 fully connected layers on raw pixels, trained without augmentation as in the study.

    Args:
        hidden: widths of the two hidden layers (the study: 512 and 256).
        dropout: Dropout probability after each hidden layer (the study: none).
    """

    transform_profile = PROFILES["plain"]

    def __init__(self, hidden: tuple[int, int] = (512, 256), dropout: FloatFrom0Below1 = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.net = MLP(hidden=hidden, dropout=dropout)
