"""What ``evaluate`` says beyond the argmax: calibration (ECE, reliability bins), top-3 accuracy, and
flip test-time augmentation, all from the logits (probabilities are their softmax).

The reliability bins are torchmetrics' own (15 equal-width confidence bins, a confidence on a bin's
upper edge in the next bin up; 1.0 in the last), so the diagram shows exactly what the ECE averages.
"""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

from cifar_bench.data.sources import NUM_CLASSES

N_BINS = 15


def reliability_bins(probabilities: torch.Tensor, labels: torch.Tensor, n_bins: int = N_BINS) -> list[dict]:
    """Per confidence bin: its edges, how many images, their mean confidence and their accuracy (None when empty)."""
    confidence, predicted = probabilities.max(dim=1)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=confidence.dtype)
    index = (torch.bucketize(confidence, edges, right=True) - 1).clamp(0, n_bins - 1)
    correct = (predicted == labels).to(confidence.dtype)
    bins = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        bins.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "images": count,
                "confidence": float(confidence[members].mean()) if count else None,
                "accuracy": float(correct[members].mean()) if count else None,
            }
        )
    return bins


def probability_metrics(logits: torch.Tensor, labels: torch.Tensor, prefix: str = "") -> dict:
    """Accuracy, top-3 accuracy and expected calibration error (L1, 15 bins) of a split's logits."""
    probabilities = logits.float().softmax(dim=1)
    return {
        f"{prefix}accuracy": float(MulticlassAccuracy(NUM_CLASSES, average="micro")(probabilities, labels)),
        f"{prefix}top3_accuracy": float(
            MulticlassAccuracy(NUM_CLASSES, top_k=3, average="micro")(probabilities, labels)
        ),
        f"{prefix}ece": float(MulticlassCalibrationError(NUM_CLASSES, n_bins=N_BINS, norm="l1")(probabilities, labels)),
    }


def calibration_metrics(logits: torch.Tensor, labels: torch.Tensor, flipped_logits: torch.Tensor | None = None) -> dict:
    """The extra keys of a split in metrics.json: top3_accuracy, ece, reliability; with the logits of
    the mirrored images, the same for flip TTA (the mean of both logits) as tta_accuracy, tta_top3_accuracy, tta_ece."""
    values = probability_metrics(logits, labels)
    del values["accuracy"]  # the split's plain accuracy is already there, from the argmax
    values["reliability"] = reliability_bins(logits.float().softmax(dim=1), labels)
    if flipped_logits is not None:
        values.update(probability_metrics((logits.float() + flipped_logits.float()) / 2, labels, prefix="tta_"))
    return values
