"""The real CIFAR-10, when CIFAR10_DIR names a folder holding an official copy or archive (CI sets it).

Known values from the dataset's own documentation (../shared/cifar10/README.md); an archive is
unpacked into CIFAR10_DIR on the first run.
"""

from __future__ import annotations

import os

import pytest

from cifar_bench.data import load_cifar10
from cifar_bench.evaluation.analyze import channel_mean_std, class_counts

CIFAR10_DIR = os.environ.get("CIFAR10_DIR")

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(
        not CIFAR10_DIR, reason="real-data test: set CIFAR10_DIR to a folder holding CIFAR-10 or its archive"
    ),
]


@pytest.fixture(scope="module")
def cifar10():
    return load_cifar10(CIFAR10_DIR, download=False)


def test_real_cifar10_has_5000_train_and_1000_test_images_per_class(cifar10):
    assert class_counts(cifar10.train_labels) == [5000] * 10
    assert class_counts(cifar10.test_labels) == [1000] * 10
    assert tuple(cifar10.train_images.shape) == (50000, 3, 32, 32) and tuple(cifar10.test_images.shape) == (
        10000,
        3,
        32,
        32,
    )
    assert cifar10.train_batch_sizes == (10000,) * 5


def test_real_cifar10_first_labels_are_the_official_ones(cifar10):
    assert cifar10.train_labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert cifar10.test_labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert cifar10.class_names[:3] == ("airplane", "automobile", "bird")


def test_real_cifar10_channel_statistics_are_the_published_ones(cifar10):
    mean, std = channel_mean_std(cifar10.train_images)
    assert [round(value, 4) for value in mean] == [0.4914, 0.4822, 0.4465]
    assert [round(value, 4) for value in std] == [0.2470, 0.2435, 0.2616]
