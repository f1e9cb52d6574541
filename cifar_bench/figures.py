"""Matplotlib figures shared by TensorBoard logging (models) and the report commands: below both.

Every text a figure shows that may come from a file (class names, run and model names in titles) goes
through ``output.figure_text`` where it enters here: a name such as ``$\\foo$`` is shown as written, never
parsed as math (an unknown symbol was a traceback)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from torchmetrics.classification import MulticlassConfusionMatrix  # noqa: E402

from cifar_bench.output import figure_text  # noqa: E402


def confusion_figure(confusion: torch.Tensor, class_names: Sequence[str], title: str = "Confusion matrix"):
    """Heatmap of a (true x predicted) count matrix with the counts in the cells: torchmetrics' own plot."""
    figure, axes = MulticlassConfusionMatrix(len(class_names)).plot(
        val=confusion.cpu(), labels=[figure_text(n) for n in class_names]
    )
    figure.set_size_inches(8, 7)
    axes.set_title(figure_text(title))
    return figure


def image_grid_figure(
    images: torch.Tensor, titles: Sequence[str], colors: Sequence[str] | None = None, columns: int = 8
):
    """uint8 (N, 3, H, W) images in a grid, each with a title (coloured, e.g. red for a mistake)."""
    rows = max(1, -(-len(images) // columns))
    figure, axes_grid = plt.subplots(rows, columns, figsize=(columns * 1.4, rows * 1.6), squeeze=False)
    for position, axes in enumerate(axes_grid.flat):
        axes.axis("off")
        if position < len(images):
            axes.imshow(images[position].permute(1, 2, 0).cpu().numpy())
            axes.set_title(figure_text(titles[position]), fontsize=7, color=colors[position] if colors else "black")
    figure.tight_layout()
    return figure


def prediction_grid_figure(
    images: torch.Tensor, predictions: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str]
):
    """Sample predictions labelled 'pred (true)', mistakes in red."""
    titles = [f"{class_names[p]} ({class_names[t]})" for p, t in zip(predictions.tolist(), labels.tolist())]
    colors = ["green" if p == t else "red" for p, t in zip(predictions.tolist(), labels.tolist())]
    return image_grid_figure(images, titles, colors)


def curves_figure(curves: dict[str, dict[str, list[float]]], title: str = ""):
    """Loss and accuracy against epoch, train and validation side by side.

    ``curves`` maps tags such as 'train/loss' or 'val/acc' to {'epoch': [...], 'value': [...]}.
    """
    figure, axes_pair = plt.subplots(1, 2, figsize=(11, 4))
    for axes, metric, label in zip(axes_pair, ("loss", "acc"), ("loss", "accuracy")):
        for split, name in (("train", "train"), ("val", "validation")):
            points = curves.get(f"{split}/{metric}")
            if points and points["epoch"]:
                axes.plot(points["epoch"], points["value"], marker="o", markersize=3, label=name)
        _finish_axes(axes, "epoch", label)
    figure.suptitle(figure_text(title))
    figure.tight_layout()
    return figure


def reliability_figure(bins: Sequence[dict], title: str = "Reliability diagram"):
    """Accuracy against confidence per bin (bars; ``bins`` as ``reliability_bins`` gives them), with the
    diagonal of perfect calibration and each bin's mean confidence as a dot. Each bar is labelled with how
    many images its bin holds, and drawn fainter the fewer it holds: a bin of two images is no evidence."""
    figure, axes = plt.subplots(figsize=(5.5, 5))
    full = [b for b in bins if b["images"]]
    most = max((b["images"] for b in full), default=1)
    bars = axes.bar([b["lower"] for b in full], [b["accuracy"] for b in full], width=[b["upper"] - b["lower"] for b in full],
                    align="edge", edgecolor="black", label="accuracy (n: images in the bin)")  # fmt: skip
    for bar, b in zip(bars, full):
        bar.set_alpha(0.25 + 0.6 * (b["images"] / most) ** 0.5)
        axes.annotate(f"{b['images']}", (bar.get_x() + bar.get_width() / 2, min(b["accuracy"], 0.93) + 0.01),
                      ha="center", va="bottom", fontsize=6, rotation=90)  # fmt: skip
    confidences = [b["confidence"] for b in full]
    axes.plot(confidences, confidences, "o", color="tab:red", markersize=3, label="mean confidence")
    axes.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=figure_text(title))
    axes.legend(loc="upper left")
    figure.tight_layout()
    return figure


def sweep_history_figure(trials: Sequence[dict], title: str = ""):
    """Each trial's validation accuracy against its number (pruned ones at their last report), with the best
    complete trial so far as a step line: how fast the search found its recipe."""
    figure, axes = plt.subplots(figsize=(7, 4))
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        points = [(t["number"], t["value"]) for t in trials if t["state"] == state and t["value"] is not None]
        if points:
            axes.plot(*zip(*points), marker, label=f"{state.lower()} trials")
    best, steps = None, []
    for trial in sorted(trials, key=lambda t: t["number"]):
        if trial["state"] == "COMPLETE" and trial["value"] is not None:
            best = trial["value"] if best is None else max(best, trial["value"])
        if best is not None:
            steps.append((trial["number"], best))
    if steps:
        axes.step(*zip(*steps), where="post", color="tab:red", label="best so far")
    return _accuracy_axes(figure, axes, "trial", title)


def epochs_figure(curves: dict[str, dict[str, list[float]]], marks: Sequence[int] = (), title: str = ""):
    """Validation accuracy against epoch, one line per model (``curves``: model -> {'epoch', 'value'}), with
    dashed lines at the epochs in ``marks`` (a recipe's and the study's epoch counts)."""
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for model, points in curves.items():
        axes.plot(points["epoch"], points["value"], marker="o", markersize=2, label=figure_text(model))
    for epoch in marks:
        axes.axvline(epoch, color="grey", linestyle="--", linewidth=1)
    return _accuracy_axes(figure, axes, "epoch", title)


def _accuracy_axes(figure, axes, xlabel: str, title: str):
    """The finish of a validation-accuracy plot against a whole-number axis: labels, grid, legend if any."""
    _finish_axes(axes, xlabel, "validation accuracy", figure_text(title))
    figure.tight_layout()
    return figure


def _finish_axes(axes, xlabel: str, ylabel: str, title: str = "") -> None:
    """Labels, whole numbers along x, a faint grid, and a legend if anything is labelled."""
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend()
