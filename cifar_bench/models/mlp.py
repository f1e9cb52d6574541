"""The study's MLP (Part 3)."""

from __future__ import annotations

from cifar_bench.data.augment import PROFILES
from cifar_bench.models.base import CifarClassifier, checked_dropout
from cifar_bench.networks import MLP


class MLPClassifier(CifarClassifier):
    """3 fully connected layers on raw pixels, trained without augmentation as in the study."""

    transform_profile = PROFILES["plain"]

    def __init__(self, hidden: tuple[int, int] = (512, 256), dropout: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.net = MLP(hidden=hidden, dropout=checked_dropout(dropout))
