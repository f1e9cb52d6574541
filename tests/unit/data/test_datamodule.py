"""The DataModule: stratified validation split, in-memory batches, and augmentation only where training."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from cifar_bench.data import PROFILES, CIFAR10DataModule, prepare_batch, stratified_split
from cifar_bench.data.loader import InMemoryBatches
from cifar_bench.errors import CifarBenchError
from cifar_bench.models import CifarClassifier


def labels_with_counts(counts: list[int]) -> torch.Tensor:
    """Class labels in a fixed scrambled order, ``counts[c]`` of class c."""
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(7))]


# ---------------------------------------------------------------- stratified split


@pytest.mark.parametrize(
    "counts, val_size",
    [
        pytest.param([50] * 10, 100, id="balanced-exact-share"),
        pytest.param([50] * 10, 37, id="balanced-fractional-share"),
        pytest.param([5, 10, 15, 20, 25, 30, 35, 40, 45, 50], 61, id="unbalanced"),
        pytest.param([1, 99, 3, 97, 5, 95, 7, 93, 9, 91], 123, id="very-unbalanced"),
        pytest.param([20] * 10, 199, id="all-but-one"),
    ],
)
def test_each_class_gives_floor_or_ceil_of_its_share_to_validation(counts, val_size):
    labels = labels_with_counts(counts)
    train, val = stratified_split(labels, val_size, seed=0)
    assert len(val) == val_size
    held_out = torch.bincount(labels[val], minlength=len(counts)).tolist()
    for count, got in zip(counts, held_out):
        share = val_size * count / len(labels)
        assert math.floor(share) <= got <= math.ceil(share), (count, got, share)


@pytest.mark.parametrize("val_size", [0, 1, 60, 150])
def test_train_and_validation_are_disjoint_and_together_the_whole_training_set(val_size):
    labels = labels_with_counts([20] * 10)
    train, val = stratified_split(labels, val_size, seed=3)
    assert len(val) == val_size
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(len(labels)))


def test_the_same_seed_gives_the_same_split_and_another_seed_another():
    labels = labels_with_counts([30] * 10)
    first, again, other = (stratified_split(labels, 50, seed) for seed in (1, 1, 2))
    assert torch.equal(first[1], again[1]) and torch.equal(first[0], again[0])
    assert not torch.equal(first[1], other[1])


@pytest.fixture
def datamodule(python_copy):
    def make(**options) -> CIFAR10DataModule:
        settings = {
            "data_dir": str(python_copy),
            "download": False,
            "val_size": 40,
            "batch_size": 16,
            "eval_batch_size": 32,
        }
        module = CIFAR10DataModule(**{**settings, **options})
        module.prepare_data()
        module.setup("fit")
        return module

    return make


def image_rows(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


def test_validation_is_held_out_of_the_training_images_and_test_is_the_official_test_batch(datamodule):
    module = datamodule(val_size=40)
    arrays = module.arrays
    train_images, _ = module.split("train")
    val_images, val_labels = module.split("val")
    test_images, test_labels = module.split("test")
    assert len(train_images) == 160 and len(val_images) == 40
    assert torch.bincount(val_labels, minlength=10).tolist() == [4] * 10
    assert image_rows(train_images) | image_rows(val_images) == image_rows(arrays.train_images)
    assert not image_rows(train_images) & image_rows(val_images)
    assert torch.equal(test_images, arrays.test_images) and torch.equal(test_labels, arrays.test_labels)
    assert not image_rows(test_images) & (image_rows(train_images) | image_rows(val_images))


def test_val_size_zero_validates_on_the_test_set_as_the_study_did(datamodule):
    module = datamodule(val_size=0)
    assert len(module.split("train")[0]) == 200
    for validation, test in zip(module.split("val"), module.split("test")):
        assert torch.equal(validation, test)


@pytest.mark.parametrize("val_size", [0, 40])
def test_batch_indices_are_positions_in_the_set_the_images_come_from(datamodule, val_size):
    module = datamodule(val_size=val_size, train_size=120)
    arrays = module.arrays
    sources = {"train": arrays.train_images, "val": arrays.test_images if val_size == 0 else arrays.train_images}
    sources["test"] = arrays.test_images
    loaders = {"train": module.train_dataloader(), "val": module.val_dataloader(), "test": module.test_dataloader()}
    for split, loader in loaders.items():
        for images, _, indices in loader:
            assert torch.equal(images, sources[split][indices])
    assert module.validates_on_test == (val_size == 0)


@pytest.mark.parametrize(
    "options, message",
    [
        pytest.param({"val_size": 200}, r"val_size 200 leaves no training images", id="val-size-too-large"),
        pytest.param(
            {"val_size": -1}, r"val_size=-1 is out of range \(int restricted to be ≥0\)", id="val-size-negative"
        ),
        pytest.param(
            {"batch_size": 0}, r"batch_size=0 is out of range \(int restricted to be >0\)", id="batch-size-zero"
        ),
    ],
)
def test_bad_settings_are_clear_errors(datamodule, options, message):
    with pytest.raises(CifarBenchError, match=message):
        datamodule(**options)


# ---------------------------------------------------------------- in-memory batches


def epoch_indices(loader: InMemoryBatches) -> torch.Tensor:
    return torch.cat([indices for _, _, indices in loader])


def test_batches_cover_the_split_exactly_once_per_epoch_with_matching_images_and_labels():
    images = torch.randint(0, 256, (103, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (103,))
    loader = InMemoryBatches(images, labels, batch_size=16, shuffle=True, seed=5)
    batches = list(loader)
    assert len(batches) == len(loader) == 7
    assert torch.equal(torch.cat([indices for _, _, indices in batches]).sort().values, torch.arange(103))
    for batch_images, batch_labels, indices in batches:
        assert torch.equal(batch_images, images[indices]) and torch.equal(batch_labels, labels[indices])
        assert batch_images.dtype == torch.uint8


def test_shuffled_order_changes_with_the_epoch_and_repeats_for_the_same_seed_and_epoch():
    labels = torch.zeros(100, dtype=torch.long)
    images = torch.zeros(100, 3, 32, 32, dtype=torch.uint8)
    make = lambda seed: InMemoryBatches(images, labels, batch_size=10, shuffle=True, seed=seed)  # noqa: E731
    loader, twin, other_seed = make(1), make(1), make(2)
    first = epoch_indices(loader)
    loader.sampler.set_epoch(1)
    second = epoch_indices(loader)
    twin.sampler.set_epoch(1)
    assert not torch.equal(first, second)
    assert torch.equal(second, epoch_indices(twin))
    assert not torch.equal(first, epoch_indices(other_seed))
    assert torch.equal(epoch_indices(InMemoryBatches(images, labels, 10, shuffle=False)), torch.arange(100))


def test_ranks_of_a_distributed_run_share_out_every_image_in_equal_batch_counts():
    images = torch.zeros(51, 3, 32, 32, dtype=torch.uint8)
    labels = torch.zeros(51, dtype=torch.long)
    ranks = [
        InMemoryBatches(images, labels, batch_size=4, shuffle=True, seed=0, rank=rank, world_size=2) for rank in (0, 1)
    ]
    for loader in ranks:
        loader.sampler.set_epoch(3)
    batches = [list(loader) for loader in ranks]
    assert len(batches[0]) == len(batches[1]) == len(ranks[0]) == len(ranks[1]) == 7
    covered = torch.cat([indices for rank_batches in batches for _, _, indices in rank_batches])
    assert len(covered) == 52  # one index repeated so both ranks see 26 images
    assert set(covered.tolist()) == set(range(51))


# ---------------------------------------------------------------- augmentation inside a Trainer


class Recorder(CifarClassifier):
    """A linear model with a given transform profile that keeps every batch it receives, once prepared."""

    def __init__(self, transform_profile: str) -> None:
        super().__init__(lr_schedule="constant")
        self.transform_profile = PROFILES[transform_profile]
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
        self.seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = defaultdict(list)

    def _record(self, stage: str, batch) -> torch.Tensor:
        images, labels, indices = batch
        self.seen[stage].append((images.detach().clone(), indices.clone()))
        return F.cross_entropy(self.net(images), labels)

    def training_step(self, batch, batch_idx):
        return self._record("train", batch)

    def validation_step(self, batch, batch_idx):
        self._record("val", batch)

    def test_step(self, batch, batch_idx):
        self._record("test", batch)

    def predict_step(self, batch, batch_idx):
        return self._record("predict", batch)


@pytest.mark.parametrize("profile", ["plain", "cifar_augmented"])
def test_the_model_augments_only_training_batches_and_only_with_an_augmenting_profile(datamodule, profile):
    module = datamodule()
    model = Recorder(profile)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=3,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=module)
    for _ in range(2):  # the same tensors every time
        trainer.validate(model, datamodule=module, verbose=False)
        trainer.test(model, datamodule=module, verbose=False)
        trainer.predict(model, datamodule=module)
    arrays = module.arrays
    source = {"train": arrays.train_images, "val": arrays.train_images, "test": arrays.test_images}
    for stage, batches in model.seen.items():
        for images, indices in batches:  # indices: positions in the training or test set
            unaugmented = prepare_batch(source.get(stage, arrays.test_images)[indices], PROFILES[profile], train=False)
            augmented = stage == "train" and PROFILES[profile].augment
            assert torch.equal(images, unaugmented) != augmented, stage
    assert {stage: len(batches) for stage, batches in model.seen.items()} == {
        "train": 3,
        "val": 6,
        "test": 2 * 2,
        "predict": 2 * 2,
    }


def test_a_loader_resumed_mid_epoch_serves_the_rest_of_that_epochs_order_then_whole_epochs():
    """What a SIGTERM checkpoint keeps of the train loader, and how a resumed fit continues from it."""
    images, labels = torch.arange(50, dtype=torch.uint8)[:, None], torch.arange(50)

    def epoch_batches(loader: InMemoryBatches, epoch: int) -> list[list[int]]:
        loader.sampler.set_epoch(epoch)
        return [indices.tolist() for _, _, indices in loader]

    interrupted = InMemoryBatches(images, labels, batch_size=8, shuffle=True, seed=3)
    interrupted.sampler.set_epoch(1)
    served = iter(interrupted)
    seen = [next(served)[2].tolist() for _ in range(3)]
    state = interrupted.state_dict()
    assert state == {"epoch": 1, "batches_served": 3}

    resumed = InMemoryBatches(images, labels, batch_size=8, shuffle=True, seed=3)
    resumed.load_state_dict(state)
    whole = epoch_batches(InMemoryBatches(images, labels, batch_size=8, shuffle=True, seed=3), 1)
    assert seen + epoch_batches(resumed, 1) == whole
    assert epoch_batches(resumed, 2) == epoch_batches(InMemoryBatches(images, labels, 8, True, seed=3), 2)
    resumed.load_state_dict({"epoch": 0, "batches_served": 3})  # an earlier epoch's position skips nothing now
    assert epoch_batches(resumed, 1) == whole
