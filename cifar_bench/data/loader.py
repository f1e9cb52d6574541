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

    Stateful as Lightning expects of a resumable loader: its ``state_dict`` (saved in every checkpoint)
    is the epoch and how many of its batches were served, and after ``load_state_dict`` (a resumed fit)
    the next pass over that same epoch starts after them. The order is a function of (seed, epoch), so
    the skipped batches are exactly those the interrupted run trained on. Lightning does not prefetch
    from a loader of known length, so every batch served has been trained on when a checkpoint is saved.
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
        self._served = 0
        self._resume_at: tuple[int, int] | None = None

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)  # the last batch may be smaller

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches_served": self._served}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume_at = (int(state_dict["epoch"]), int(state_dict["batches_served"]))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        indices = self.sampler.indices()
        epoch, served = self._resume_at or (None, 0)
        self._resume_at = None
        self._served = served if epoch == self.sampler.epoch else 0
        for start in range(self._served * self.batch_size, len(self) * self.batch_size, self.batch_size):
            chunk = indices[start : start + self.batch_size]
            self._served += 1
            yield self.images[chunk], self.labels[chunk], self.positions[chunk]
