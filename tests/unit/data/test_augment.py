"""Batched augmentation and the transform profiles: per-image randomness, torchvision's geometry, normalisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from cifar_bench.data.augment import PROFILES, prepare_batch, random_horizontal_flip, random_rotation, rotate


def smooth_images(count: int, seed: int = 0) -> torch.Tensor:
    """Float images in [0, 1] with structure (so rotations and flips visibly change them)."""
    noise = torch.rand(count, 3, 36, 36, generator=torch.Generator().manual_seed(seed))
    return F.avg_pool2d(noise, 5, 1)


def uint8_images(count: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_evaluation_batches_are_only_scaled_and_normalised_with_the_profile_statistics(name):
    profile = PROFILES[name]
    images = uint8_images(16)
    expected = TF.normalize(images.float() / 255, list(profile.mean), list(profile.std))
    first, second = prepare_batch(images, profile, train=False), prepare_batch(images, profile, train=False)
    assert torch.allclose(first, expected, atol=1e-6)
    assert torch.equal(first, second)


def test_profiles_augment_and_normalise_as_the_study_did():
    assert (
        not PROFILES["plain"].augment and PROFILES["cifar_augmented"].augment and PROFILES["imagenet_augmented"].augment
    )
    assert (PROFILES["plain"].mean, PROFILES["plain"].std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert PROFILES["imagenet_augmented"].mean == (0.485, 0.456, 0.406)
    assert PROFILES["imagenet_augmented"].std == (0.229, 0.224, 0.225)
    assert PROFILES["cifar_augmented"].mean == (0.4914, 0.4822, 0.4465)


@pytest.mark.parametrize("name", [name for name, profile in PROFILES.items() if not profile.augment])
def test_profiles_without_augmentation_leave_training_batches_unaugmented(name):
    images = uint8_images(32)
    assert torch.equal(
        prepare_batch(images, PROFILES[name], train=True), prepare_batch(images, PROFILES[name], train=False)
    )


@pytest.mark.parametrize("name", [name for name, profile in PROFILES.items() if profile.augment])
def test_training_augmentation_differs_per_image_within_a_batch(name):
    torch.manual_seed(0)
    same = uint8_images(1).expand(64, -1, -1, -1).contiguous()
    out = prepare_batch(same, PROFILES[name], train=True)
    flat = out.flatten(1)
    largest_difference = (flat[:, None] - flat[None]).abs().amax(-1)
    off_diagonal = ~torch.eye(64, dtype=torch.bool)
    assert torch.all(largest_difference[off_diagonal] > 1e-3)  # each image got its own angle
    assert not torch.allclose(out, prepare_batch(same, PROFILES[name], train=False))


def test_each_image_is_flipped_or_not_on_its_own():
    torch.manual_seed(0)
    image = smooth_images(1)
    out = random_horizontal_flip(image.expand(64, -1, -1, -1))
    flipped = (out == image.flip(-1)).flatten(1).all(1)
    kept = (out == image).flatten(1).all(1)
    assert torch.all(flipped ^ kept)
    assert 0 < int(flipped.sum()) < 64


@pytest.mark.parametrize("degrees", [10.0, -7.5, 30.0])
def test_rotation_matches_torchvision_rotate_bilinear(degrees):
    images = smooth_images(2)
    expected = TF.rotate(images, degrees, interpolation=InterpolationMode.BILINEAR)
    assert torch.allclose(rotate(images, torch.tensor([degrees, degrees])), expected, atol=1e-5)


def test_one_rotation_call_gives_each_image_its_own_angle():
    images = smooth_images(3)
    angles = [10.0, -10.0, 0.0]
    out = rotate(images, torch.tensor(angles))
    for index, degrees in enumerate(angles):
        expected = TF.rotate(images[index : index + 1], degrees, interpolation=InterpolationMode.BILINEAR)
        assert torch.allclose(out[index : index + 1], expected, atol=1e-5)


def test_random_rotation_stays_within_its_range():
    """At most 10 degrees: every output is closer to some rotation within range than to one beyond it."""
    torch.manual_seed(0)
    image = smooth_images(1)
    out = random_rotation(image.expand(16, -1, -1, -1), max_degrees=10.0)
    candidates = rotate(image.expand(61, -1, -1, -1), torch.linspace(-30, 30, 61))
    nearest = torch.cdist(out.flatten(1), candidates.flatten(1)).argmin(1)
    assert torch.all((nearest >= 20) & (nearest <= 40))
