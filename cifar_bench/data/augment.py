"""Batched, vectorised image preparation: the per-image PIL transforms of the study, done on whole batches.

Each image still gets its own random flip and its own rotation angle, but one call handles the batch on
whatever device it lives on, so no Python runs per image in the training loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TransformProfile:
    """What a model expects of its input: whether training images are augmented, and the normalisation."""

    name: str
    augment: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    max_rotation_degrees: float = 10.0


PROFILES = {
    profile.name: profile
    for profile in (
        # The study's MLP: ToTensor and Normalize((0,), (1,)), no augmentation.
        TransformProfile("plain", augment=False, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
        # The study's CNNs: random flips and rotations on training data, then normalisation.
        TransformProfile("cifar_augmented", augment=True, mean=CIFAR10_MEAN, std=CIFAR10_STD),
        # VGG16 sees the statistics its ImageNet weights were trained with.
        TransformProfile("imagenet_augmented", augment=True, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    )
}


# Bumped whenever what an augmentation draw produces changes: stored augmented views are keyed by it.
AUGMENTATION_VERSION = 1


def flip_where(images: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror the images of an (N, C, H, W) batch whose entry of the boolean (N,) ``flip`` is set."""
    return torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)


def random_horizontal_flip(images: torch.Tensor, probability: float = 0.5) -> torch.Tensor:
    """Mirror each image of an (N, C, H, W) batch independently with the given probability."""
    return flip_where(images, torch.rand(images.shape[0], device=images.device) < probability)


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image of a float (N, C, H, W) batch counter-clockwise by its own angle, corners filled with 0.

    Same geometry as torchvision's ``rotate`` (about the centre, bilinear), in one call for the batch.
    """
    angles = torch.deg2rad(degrees.to(device=images.device, dtype=images.dtype))
    cos, sin = angles.cos(), angles.sin()
    zeros = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_rotation(images: torch.Tensor, max_degrees: float) -> torch.Tensor:
    """Rotate each image by its own angle, uniform in [-max_degrees, max_degrees] (torchvision's RandomRotation)."""
    degrees = (torch.rand(images.shape[0], device=images.device) * 2 - 1) * max_degrees
    return rotate(images, degrees)


def augmentation_draws(count: int, max_degrees: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(flip, degrees) for ``count`` images as the random transforms draw them, from a given generator: a
    view fixed once, such as a stored augmented view of the whole training set."""
    flip = torch.rand(count, generator=generator) < 0.5
    degrees = (torch.rand(count, generator=generator) * 2 - 1) * max_degrees
    return flip, degrees


def augmented_view(
    images: torch.Tensor, profile: TransformProfile, flip: torch.Tensor, degrees: torch.Tensor
) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) images as the network input of one given draw: ``prepare_batch``'s training
    path with the flips and angles fixed instead of drawn."""
    batch = images.float().div_(255)
    return normalized(rotate(flip_where(batch, flip), degrees), profile)


def prepare_batch(images: torch.Tensor, profile: TransformProfile, train: bool) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) batch to the float input the model expects; augmentation only when training."""
    batch = images.float().div_(255)
    if train and profile.augment:
        batch = random_rotation(random_horizontal_flip(batch), profile.max_rotation_degrees)
    return normalized(batch, profile)


def normalized(batch: torch.Tensor, profile: TransformProfile) -> torch.Tensor:
    """(x - mean) / std per channel, in place; not torchvision's normalize, whose check of std on the
    device would wait for a GPU at every step."""
    mean, std = (
        torch.tensor(v, device=batch.device, dtype=batch.dtype).view(1, -1, 1, 1) for v in (profile.mean, profile.std)
    )
    return batch.sub_(mean).div_(std)
