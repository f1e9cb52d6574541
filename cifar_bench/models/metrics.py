"""The classification metrics of the study, defined once: training logs them, ``evaluate`` reports them."""

from __future__ import annotations

from collections.abc import Sequence

from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.wrappers import ClasswiseWrapper

from cifar_bench.data.sources import NUM_CLASSES

PER_CLASS = ("class_acc", "class_precision", "class_f1")


def confusion_matrix() -> MulticlassConfusionMatrix:
    """Counts of (true class, predicted class): rows are the true class."""
    return MulticlassConfusionMatrix(NUM_CLASSES)


def classification_metrics() -> dict[str, Metric]:
    """Overall accuracy, macro precision/recall/F1, their per-class values (accuracy of a class is its
    recall), and the confusion matrix (rows: true class)."""
    return {
        "acc": MulticlassAccuracy(NUM_CLASSES, average="micro"),
        "precision_macro": MulticlassPrecision(NUM_CLASSES, average="macro"),
        "recall_macro": MulticlassRecall(NUM_CLASSES, average="macro"),
        "f1_macro": MulticlassF1Score(NUM_CLASSES, average="macro"),
        "class_acc": MulticlassRecall(NUM_CLASSES, average=None),
        "class_precision": MulticlassPrecision(NUM_CLASSES, average=None),
        "class_f1": MulticlassF1Score(NUM_CLASSES, average=None),
        "confusion": confusion_matrix(),
    }


def logged_metrics(class_names: Sequence[str]) -> MetricCollection:
    """The scalars logged every epoch, named for TensorBoard: ``acc``, ``f1_macro``, ``class_acc/cat``...

    Clone it with ``prefix="val/"`` (and so on) for each stage.
    """
    metrics = classification_metrics()
    del metrics["confusion"]
    for name in PER_CLASS:
        metrics[name] = ClasswiseWrapper(metrics[name], labels=list(class_names), prefix=f"{name}/")
    # The macro scores share their state; each wrapped per-class metric updates its own (grouped with
    # the others, its inner metric would warn that it was computed without an update).
    groups = [["acc"], ["precision_macro", "recall_macro", "f1_macro"], *([name] for name in PER_CLASS)]
    return MetricCollection(metrics, compute_groups=groups)
