"""CIFAR-10 as a LightningDataModule: the whole dataset in memory as uint8, served in batches.

The DataModule hands out uint8 images; the model turns them into its own input (augmentation,
normalisation) on its device, so the data layer never needs to know which model is training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt

from cifar_bench.arguments import Seed, refuse_out_of_range
from cifar_bench.data.loader import InMemoryBatches
from cifar_bench.data.sources import NUM_CLASSES, CifarArrays, locate, read_folder
from cifar_bench.errors import CifarBenchError


def stratified_split(labels: torch.Tensor, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (train, val) with every class represented in proportion, reproducibly.

    Shuffle once with the seed, rank each image within its class, and hold out the images whose rank
    is smallest relative to their class size: each class gives floor or ceil of its share.
    """
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    shuffled = labels[order]
    counts = torch.bincount(shuffled, minlength=NUM_CLASSES)
    grouped = torch.argsort(shuffled, stable=True)
    class_starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(shuffled)
    rank[grouped] = torch.arange(len(labels)) - class_starts[shuffled[grouped]]
    share = (rank.double() + 0.5) / counts[shuffled].double()
    held_out = torch.argsort(share, stable=True)[:val_size]
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    is_val[held_out] = True
    return order[~is_val].sort().values, order[is_val].sort().values


class CIFAR10DataModule(pl.LightningDataModule):
    """CIFAR-10 from an extracted official copy, an official archive, or torchvision's download.

    Args:
        data_dir: folder holding ``cifar-10-batches-py/``, ``cifar-10-batches-bin/`` or an official archive.
        download: fetch the python version with torchvision when no copy or archive is found.
        val_size: training images held out for validation, stratified by class; 0 validates on the
            test set, as the study did.
        train_size: keep only this many training images (a stratified subset, fixed by the seed) for
            quick experiments; None keeps them all.
        batch_size: training batch size (the study used 64).
        eval_batch_size: batch size for validation, test and prediction, where no gradients are kept.
        seed: fixes the validation split and the shuffling order.

    Loaders yield ``(uint8 images, labels, indices)``; ``indices`` are the images' positions in the set they
    come from (the 50,000 training or the 10,000 test images), so a model may look up per-image results
    stored for the whole set, whatever the split; the model prepares the images (``model.prepare_inputs``).
    """

    # Whether setup reads the test batch; a sweep's DataModule does not, so no trial can be judged on it.
    reads_test = True

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = True,
        val_size: NonNegativeInt = 5000,
        train_size: Optional[PositiveInt] = None,
        batch_size: PositiveInt = 64,
        eval_batch_size: PositiveInt = 500,
        seed: Seed = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        refuse_out_of_range(type(self), self.hparams)
        self.data_dir = Path(data_dir)
        self.arrays: Optional[CifarArrays] = None
        self.train_index = self.val_index = torch.empty(0, dtype=torch.long)

    def prepare_data(self) -> None:
        """Unpack or download once per machine (rank 0 only under DDP)."""
        locate(self.data_dir, self.hparams.download)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.arrays is not None:
            return
        arrays = read_folder(locate(self.data_dir, download=False), test=self.reads_test)
        train_index, val_index = self.split_positions(arrays.train_labels)
        self.arrays = arrays
        self.train_index, self.val_index = train_index, val_index

    def split_positions(self, train_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the images trained on, the held-out validation images) as positions in the training set: what
        this module's val_size, train_size and seed make of it (evaluate redoes a run's split with it)."""
        val_size, train_size, seed = (self.hparams[key] for key in ("val_size", "train_size", "seed"))
        if isinstance(seed, bool) or not isinstance(seed, int):  # the parser's Seed is an int
            raise CifarBenchError(f"seed {seed!r} is not a whole number: pass one")
        if val_size >= len(train_labels):
            raise CifarBenchError(
                f"val_size {val_size} leaves no training images (the training set has "
                f"{len(train_labels)}): choose a smaller val_size"
            )
        train_index, val_index = stratified_split(train_labels, val_size, seed)
        if train_size is not None and train_size < len(train_index):
            _, kept = stratified_split(train_labels[train_index], train_size, seed)
            train_index = train_index[kept]
        return train_index, val_index

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.arrays.class_names

    @property
    def validates_on_test(self) -> bool:
        """Whether 'val' is the test set (val_size 0, as in the study) rather than held-out training images."""
        return self.hparams.val_size == 0

    def source_positions(self, name: str) -> torch.Tensor:
        """The positions of split ``name``'s images in the set they come from (training or test set)."""
        if name == "train":
            return self.train_index
        if name == "val" and not self.validates_on_test:
            return self.val_index
        if name in ("val", "test"):
            return torch.arange(len(self.arrays.test_labels))
        raise ValueError(f"unknown split {name!r}")

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images, labels) of 'train', 'val' or 'test'; 'val' is the test set when val_size is 0."""
        positions, arrays = self.source_positions(name), self.arrays
        from_test = name == "test" or (name == "val" and self.validates_on_test)
        images, labels = (
            (arrays.test_images, arrays.test_labels) if from_test else (arrays.train_images, arrays.train_labels)
        )
        return images[positions], labels[positions]

    def _batches(self, split: str, batch_size: int, shuffle: bool) -> InMemoryBatches:
        images, labels = self.split(split)
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return InMemoryBatches(
            images, labels, batch_size, shuffle, self.hparams.seed, rank, world_size, self.source_positions(split)
        )

    def train_dataloader(self) -> InMemoryBatches:
        return self._batches("train", self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> InMemoryBatches:
        return self._batches("val", self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> InMemoryBatches:
        return self._batches("test", self.hparams.eval_batch_size, shuffle=False)

    predict_dataloader = test_dataloader
