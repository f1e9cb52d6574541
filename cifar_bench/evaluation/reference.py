"""What the study reported, the one place the package keeps its numbers: per model, its per-class train
and test counts (the "Per Class Train/Test Accuracy" lines, e.g. ``Train accuracy of cat : 53.44%
(2672/5000)``) and its training epochs ("Results & Comparisons"). The exact accuracies are computed
from the counts; the study's table rounds them to two digits (``STUDY_TABLE``, kept to check against).
"""

from __future__ import annotations

STUDY_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
STUDY_SUPPORT = {"train": 5000, "test": 1000}  # images per class and split in the study's evaluation

# model: split: correct images per class, in STUDY_CLASSES order, as the study's per-class lines give them.
STUDY_COUNTS = {
    "mlp": {
        "train": (3318, 4290, 3314, 2672, 3932, 3425, 4017, 4170, 4231, 4450),
        "test": (478, 580, 419, 275, 522, 428, 533, 564, 639, 615),
    },
    "cnn": {
        "train": (4997, 4998, 4988, 4960, 4985, 4994, 4996, 4998, 4964, 4998),
        "test": (900, 923, 786, 672, 811, 807, 891, 879, 890, 920),
    },
    "cnn_bn_do": {
        "train": (4877, 4889, 4784, 4686, 4880, 4520, 4921, 4919, 4981, 4960),
        "test": (867, 925, 835, 796, 921, 788, 934, 909, 948, 953),
    },
    "vgg16_last2": {
        "train": (3235, 4124, 2545, 2485, 2735, 2998, 3623, 3302, 3580, 2948),
        "test": (633, 828, 458, 468, 539, 600, 705, 637, 711, 588),
    },
    "vgg16_last3": {
        "train": (3781, 4308, 3468, 2891, 3186, 3619, 4140, 3688, 4254, 3697),
        "test": (715, 834, 624, 481, 603, 694, 764, 692, 800, 709),
    },
    "vgg16_last5": {
        "train": (4251, 4742, 4200, 3548, 4104, 3756, 4621, 4441, 4583, 4256),
        "test": (790, 921, 718, 598, 753, 677, 873, 831, 865, 793),
    },
}
# model: (test accuracy, training epochs), as the study's "Results & Comparisons" table gives them (rounded).
STUDY_TABLE = {
    "mlp": (0.51, 18),
    "cnn": (0.85, 120),
    "cnn_bn_do": (0.89, 120),
    "vgg16_last2": (0.62, 30),
    "vgg16_last3": (0.69, 30),
    "vgg16_last5": (0.78, 30),
}
STUDY_RANDOM_ACCURACY = 0.1


def study_class_accuracy(model: str, split: str) -> dict[str, tuple[int, int]] | None:
    """The study's (correct, images) per class name for a model and split (None for models it did not train)."""
    if model not in STUDY_COUNTS:
        return None
    return {name: (correct, STUDY_SUPPORT[split]) for name, correct in zip(STUDY_CLASSES, STUDY_COUNTS[model][split])}


def study_accuracy(model: str, split: str = "test") -> float | None:
    """The study's exact accuracy of a model on a split, from its per-class counts (None for models it did not train)."""
    if model not in STUDY_COUNTS:
        return None
    return sum(STUDY_COUNTS[model][split]) / (STUDY_SUPPORT[split] * len(STUDY_CLASSES))


def study_epochs(model: str) -> int | None:
    """How many epochs the study trained a model (None for models it did not train)."""
    return STUDY_TABLE[model][1] if model in STUDY_TABLE else None
