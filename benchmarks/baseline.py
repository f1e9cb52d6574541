"""The study's notebook loop on the same network, the yardstick of every speed-up.

A DataLoader over PIL images with per-image torchvision transforms, fp32, NCHW, the default SGD, batch 64.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from benchmarks.harness import BASELINE_BATCH, init_arguments, seconds_per_step, stamp
from cifar_bench.data.augment import TransformProfile
from cifar_bench.models import CifarClassifier

# Keys a model may have that change how it computes (not what): the baseline runs without them.
FAST_PATH_OPTIONS = {"fold_fc6": False, "channels_last": False, "feature_store": None}


class PilImages(Dataset):
    """torchvision's CIFAR10 dataset as the study used it: an HWC uint8 array, one PIL image per item."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable) -> None:
        self.data = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.targets = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


def study_transform(profile: TransformProfile, train: bool) -> transforms.Compose:
    """The study's per-image transforms: flips and rotations when the profile augments, then ToTensor and Normalize."""
    augment = []
    if train and profile.augment:
        augment = [transforms.RandomHorizontalFlip(), transforms.RandomRotation(profile.max_rotation_degrees)]
    return transforms.Compose([*augment, transforms.ToTensor(), transforms.Normalize(profile.mean, profile.std)])


def study_network(model: CifarClassifier) -> nn.Module:
    """A fresh copy of the model's network as the study ran it: no fast-path options, fp32, NCHW."""
    arguments = init_arguments(model.hparams)
    options = {key: value for key, value in FAST_PATH_OPTIONS.items() if key in arguments}
    return type(model)(**{**arguments, **options}).net


def study_loader(images: torch.Tensor, labels: torch.Tensor, profile: TransformProfile, train: bool) -> DataLoader:
    return DataLoader(
        PilImages(images, labels, study_transform(profile, train)), batch_size=BASELINE_BATCH, shuffle=True
    )


def study_device() -> torch.device:
    """Where the study's loop runs: the GPU when there is one, whatever the package's accelerator."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def study_train(net: nn.Module, loader: DataLoader, lr: float, momentum: float, steps: int, warmup: int) -> float:
    """The study's training loop (its cell 14): seconds per step after warm-up."""
    device = study_device()
    net.to(device).train()
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr, momentum=momentum)
    criterion = nn.CrossEntropyLoss()
    stamps, running_loss = [], 0.0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        loss = criterion(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        stamps.append(stamp(device))
        if len(stamps) == warmup + steps:
            break
    return seconds_per_step(stamps, warmup)


def study_eval(net: nn.Module, loader: DataLoader, batches: int, warmup: int = 1) -> float:
    """The study's evaluation loop: seconds per batch of 64 after warm-up."""
    device = study_device()
    net.to(device).eval()
    stamps = []
    with torch.no_grad():
        for images, _ in loader:
            net(images.to(device)).argmax(dim=1).cpu()
            stamps.append(stamp(device))
            if len(stamps) == warmup + batches:
                break
    return seconds_per_step(stamps, warmup)
