"""What the study reported ("Results & Comparisons"), the one place the package keeps its numbers."""

from __future__ import annotations

# model: (test accuracy, training epochs), as the study's table gives them.
STUDY_RESULTS = {
    "mlp": (0.51, 18),
    "cnn": (0.85, 120),
    "cnn_bn_do": (0.89, 120),
    "vgg16_last2": (0.62, 30),
    "vgg16_last3": (0.69, 30),
    "vgg16_last5": (0.78, 30),
}
STUDY_RANDOM_ACCURACY = 0.1


def study_accuracy(model: str) -> float | None:
    """The study's test accuracy of a model name (None for models the study did not train)."""
    return STUDY_RESULTS[model][0] if model in STUDY_RESULTS else None
