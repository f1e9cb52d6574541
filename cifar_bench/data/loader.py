"""Batches sliced straight out of in-memory uint8 tensors, in the manner of airbench's CifarLoader.

No per-image ``__getitem__`` or collation: each batch is one fancy-index into the whole dataset.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class EpochPermutation:
    """Index order for one epoch: seeded by (seed, epoch) so that a resumed run sees the same order.

    Lightning calls ``set_epoch`` on a loader's ``sampler`` at the start of every epoch. Under
    distributed training each rank takes every ``world_size``-th index of the same permutation, padded
    by wrapping around so every rank gets as many batches (as torch's DistributedSampler does).
    """

    def __init__(self, size: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.size // self.world_size)

    def indices(self) -> torch.Tensor:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        else:
            order = torch.arange(self.size)
        padded = len(self) * self.world_size
        if padded > self.size:
            order = torch.cat([order, order[: padded - self.size]])
        return order[self.rank :: self.world_size]


class InMemoryBatches:
    """Iterable of ``(images, labels, indices)`` batches over tensors already in memory (uint8 images).

    ``indices`` are the images' ``positions`` in the set they come from (by default, within the tensors
    given), so a model can look up per-image features stored for that whole set.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        positions: torch.Tensor | None = None,
    ) -> None:
        self.images, self.labels = images, labels
        self.positions = torch.arange(len(labels)) if positions is None else positions
        self.batch_size = batch_size
        # Lightning inspects these two DataLoader attributes: set_epoch on ``sampler``, no batch sampler.
        self.sampler = EpochPermutation(len(labels), shuffle, seed, rank, world_size)
        self.batch_sampler = None

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)  # the last batch may be smaller

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        indices = self.sampler.indices()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            chunk = indices[start : start + self.batch_size]
            yield self.images[chunk], self.labels[chunk], self.positions[chunk]
