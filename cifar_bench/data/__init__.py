"""Finding and reading CIFAR-10, batched augmentation, and the DataModule."""

from cifar_bench.data.augment import PROFILES, prepare_batch
from cifar_bench.data.datamodule import CIFAR10DataModule, stratified_split
from cifar_bench.data.sources import CLASS_NAMES, CifarArrays, load_cifar10

__all__ = [
    "CIFAR10DataModule",
    "CLASS_NAMES",
    "CifarArrays",
    "PROFILES",
    "load_cifar10",
    "prepare_batch",
    "stratified_split",
]
