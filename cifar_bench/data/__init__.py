"""Finding and reading CIFAR-10, batched augmentation, and the DataModule."""

from cifar_bench.data.augment import PROFILES, TransformProfile, prepare_batch
from cifar_bench.data.datamodule import CIFAR10DataModule, stratified_split
from cifar_bench.data.sources import CLASS_NAMES, NUM_CLASSES, CifarArrays, load_cifar10, locate

__all__ = [
    "CIFAR10DataModule",
    "CLASS_NAMES",
    "CifarArrays",
    "NUM_CLASSES",
    "PROFILES",
    "TransformProfile",
    "load_cifar10",
    "locate",
    "prepare_batch",
    "stratified_split",
]
