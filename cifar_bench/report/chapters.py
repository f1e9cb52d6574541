"""The report's chapter on each model, as blocks (``model_chapter``), in the study's order.

Everything comes from what ``evaluate`` wrote (metrics.json: per-class counts, reports, confusion
matrices, reliability bins, curves) and the run's config.yaml and environment.json; figures are drawn
afresh from those numbers, so a folder of copied evidence (results/) gives the whole report.
"""

from __future__ import annotations

from pathlib import Path, PurePath

import torch

from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.compare import mean_std, spread_text
from cifar_bench.evaluation.evaluated import evaluation_of
from cifar_bench.evaluation.evaluation_files import SPLITS, classification_report, format_duration
from cifar_bench.evaluation.paired import first_seed_run
from cifar_bench.evaluation.pretrained import loads_pretrained_weights, params_text, run_weights_text
from cifar_bench.evaluation.reference import study_class_accuracy
from cifar_bench.figures import confusion_figure, curves_figure, reliability_figure
from cifar_bench.models import known_model
from cifar_bench.report.blocks import (
    bullets,
    figure,
    heading,
    paragraph,
    percent,
    preformatted,
    run_config,
    run_file,
    table,
)
from cifar_bench.run_folder import CONFIG_SECTIONS, RunFolder
from cifar_bench.training.checkpoints import model_settings
from cifar_bench.training.lightning_cli import PATH_SETTINGS

# The longest list setting (layer widths) whose network the report rebuilds: far above any real model's.
MAX_LISTED_LAYERS = 1000


def model_chapter(number: int, model: str, group: list[dict], directory: Path) -> list[dict]:
    """One model: architecture, recipe, curves, per-class accuracy beside the study's, reports, confusion,
    sample predictions, calibration; several seeds as mean ± std (the figures and reports: the first seed's run)."""
    first = first_seed_run(model, {model: group})
    run_folder = evaluation_of(first).run
    prefix = f"model{number}"
    blocks = [heading(model, anchor=prefix)]
    try:
        blocks += (
            seeds_blocks(group, first)
            + architecture_blocks(first, directory, run_folder)
            + recipe_blocks(first, directory, run_folder)
        )
        blocks += curves_blocks(first, prefix) + per_class_blocks(model, group) + classification_report_blocks(first)
        blocks += confusion_blocks(first, prefix) + samples_blocks(first, directory, prefix)
        blocks += calibration_blocks(group, first, prefix)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        reason = f"{type(error).__name__}: {error}"
        blocks.append(
            paragraph(
                f"The metrics.json of {first['run_name']} lacks what this chapter needs ({reason}): run evaluate again."
            )
        )
    return blocks


def seeds_blocks(group: list[dict], first: dict) -> list[dict]:
    if len(group) == 1:
        return [paragraph(f"One run ({first['run_name']}, seed {first.get('seed')}).")]
    lines = [
        f"{split} accuracy {spread_text(*mean_std([run['splits'][split]['accuracy'] for run in group]))}"
        for split in SPLITS
    ]
    seeds = ", ".join(str(run.get("seed")) for run in group)
    return [
        paragraph(
            f"{len(group)} runs (seeds {seeds}): {'; '.join(lines)} (mean ± sample std). Per-class accuracy and "
            f"calibration below are mean ± std over the runs; curves, reports and figures are the first seed's ({first['run_name']})."
        )
    ]


def architecture_blocks(run: dict, directory: Path, run_folder: RunFolder) -> list[dict]:
    rows = [
        ["model class", run.get("model_class", "-")],
        ["weight layers", run["weight_layers"]],
        ["trainable / total parameters", params_text(run, loads_pretrained_weights(run))],
        ["input transform", run.get("transform_profile", "-")],
    ]
    weights = run_weights_text(run)
    if weights is not None:
        rows.append(["starting weights", weights])
    return [heading("Architecture", 3), table(["", ""], rows), *layer_blocks(run_config(directory, run_folder), run)]


def layer_blocks(config: dict | None, run: dict) -> list[dict]:
    """The network's layers, rebuilt from the run's config.yaml on the meta device (no weights, no memory):
    only this package's models, as evaluate builds them (pretrained weights not loaded)."""
    model = (config or {}).get("model")
    cls = known_model(model.get("class_path")) if isinstance(model, dict) else None
    settings = model.get("init_args") if cls is not None else None
    if not isinstance(settings, dict):
        return [
            paragraph("The network's layers are not shown: the run's config.yaml names none of this package's models.")
        ]
    settings = model_settings(cls, settings)
    # A list of a million entries (an MLP's hidden) would build that many modules, even on meta: bounded by
    # the code, not by a count the same run folder gives (metrics.json's weight_layers).
    longest = max((len(v) for v in settings.values() if isinstance(v, (list, tuple))), default=0)
    if longest > MAX_LISTED_LAYERS:
        return [
            paragraph(
                f"The network's layers are not shown: config.yaml lists {longest:,} entries, "
                f"over the {MAX_LISTED_LAYERS:,} this report rebuilds."
            )
        ]
    try:  # a config.yaml of an older version may hold settings this code no longer takes
        with torch.device("meta"):
            built = cls(**settings)
    except (CifarBenchError, RuntimeError, KeyError, TypeError, ValueError, AttributeError) as error:
        return [paragraph(f"The network's layers could not be rebuilt from config.yaml ({type(error).__name__}).")]
    rows = []
    for name, layer in built.net.named_modules():
        if not list(layer.children()):
            parameters = list(layer.parameters())
            trained = "-" if not parameters else "yes" if any(p.requires_grad for p in parameters) else "frozen"
            rows.append([name, _setting(layer), f"{sum(p.numel() for p in parameters):,}", trained])
    counts = built.parameter_counts()
    same = counts == (run["trainable_params"], run["total_params"])
    note = (
        ""
        if same
        else f" (this code builds {counts[0]:,} / {counts[1]:,} parameters from it, not the run's: the code changed since)"
    )
    return [
        paragraph(f"The network's layers, rebuilt from the run's config.yaml{note}:"),
        table(["layer", "module", "parameters", "trained"], rows),
    ]


def setting_shown(key: str, value):
    """A model setting as the recipe shows it: a file or folder it names (a weights file, a feature store) by its
    name alone, never the path it had on the machine that trained (the architecture's starting weights give
    the weights file's digest)."""
    if key not in PATH_SETTINGS or not isinstance(value, str) or value in PATH_SETTINGS[key]:
        return value
    return PurePath(value).name


def _setting(value) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def recipe_blocks(run: dict, directory: Path, run_folder: RunFolder) -> list[dict]:
    """The recipe as the run's config.yaml and environment.json record it."""
    blocks = [heading("Recipe", 3)]
    config = run_config(directory, run_folder)
    if config is None:
        return blocks + [paragraph(f"No readable config.yaml in {run['run_name']}: the recipe is unknown.")]
    model, trainer, data = (config.get(key) or {} for key in CONFIG_SECTIONS)  # mappings: read_config checked them
    settings = model.get("init_args") if isinstance(model.get("init_args"), dict) else {}
    rows = [[f"model: {key}", _setting(setting_shown(key, value))] for key, value in settings.items()]
    rows += [
        ["epochs (max / trained)", f"{trainer.get('max_epochs', '-')} / {run.get('epochs_trained', '-')}"],
        ["batch size", data.get("batch_size", "-")],
        ["validation images held out", data.get("val_size", "-")],
        ["seed", config.get("seed_everything", "-")],
        ["precision (training / evaluation)", f"{trainer.get('precision', '-')} / {run.get('precision', '-')}"],
        ["training time", format_duration(run.get("training_time_s"))],
    ]
    environment = run_file(directory, run_folder.environment_file, lambda path: run_folder.read_environment())
    machine = environment.get("machine") if environment and isinstance(environment.get("machine"), dict) else None
    if machine:
        gpu = machine.get("gpu") or "no GPU"
        rows.append(
            [
                "machine",
                f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {gpu}; torch {machine.get('torch', '?')}",
            ]
        )
        sessions = environment.get("sessions")
        if isinstance(sessions, list):
            rows.append(["fit sessions (interrupted and resumed)", len(sessions)])
    return blocks + [table(["setting", "value"], rows)]


def curves_blocks(run: dict, prefix: str) -> list[dict]:
    blocks = [heading("Training loss and accuracy", 3)]
    if not run.get("epochs_trained"):
        return blocks + [paragraph("No epoch-level curves were recorded in this run's event files.")]
    drawn = curves_figure(run["curves"], f"{run['model']}: training curves")
    return blocks + [
        figure(f"{prefix}_curves.png", drawn, "Loss and accuracy per epoch (validation: held-out training images)")
    ]


def _accuracy_row(label: str, counts: list[tuple[int, int]], study: tuple[int, int] | None) -> list[str]:
    """Our accuracy from each run's (correct, images): the study's form for one run, mean ± std in percent for
    several; beside the study's and the difference in points."""
    if not all(images for _, images in counts):  # a class with no images in a split: evaluate writes support 0
        return [label, "-", percent(*study) if study else "-", "-"]
    if len(counts) == 1:
        ours, mean = percent(*counts[0]), counts[0][0] / counts[0][1]
    else:
        mean, std = mean_std([correct / images for correct, images in counts])
        ours = f"{mean:.2%} ± {std * 100:.2f}"
    if study is None:
        return [label, ours, "-", "-"]
    return [label, ours, percent(*study), f"{(mean - study[0] / study[1]) * 100:+.2f} pp"]


def per_class_blocks(model: str, runs: list[dict]) -> list[dict]:
    """Per split, each class's accuracy in the study's form, beside the study's and the difference (points)."""
    blocks = [heading("Per-class accuracy, beside the study's", 3)]
    for split in SPLITS:
        study = study_class_accuracy(model, split) or {}
        ours = [run["splits"][split] for run in runs]
        rows = [
            _accuracy_row(
                f"{split.capitalize()} accuracy of {name}",
                [(counts["per_class"][name]["correct"], counts["per_class"][name]["support"]) for counts in ours],
                study.get(name),
            )
            for name in runs[0]["class_names"]
        ]
        total = tuple(map(sum, zip(*study.values()))) if study else None
        overall = [(counts["correct"], counts["images"]) for counts in ours]
        rows.append(_accuracy_row(f"{split.capitalize()} accuracy", overall, total))
        blocks.append(table(["", "ours", "study", "difference"], rows))
    if not study_class_accuracy(model, "test"):
        blocks.append(paragraph(f"The study did not train {model}: no figures to set beside ours."))
    return blocks


def classification_report_blocks(run: dict) -> list[dict]:
    blocks = [heading("Classification reports", 3)]
    for split in SPLITS:
        blocks += [paragraph(f"[{split.capitalize()}]:"), preformatted(classification_report(run["splits"][split]))]
    return blocks


def confusion_blocks(run: dict, prefix: str) -> list[dict]:
    blocks = [heading("Confusion matrices", 3)]
    for split in ("test", "train"):
        confusion = torch.tensor(run["splits"][split]["confusion_matrix"])
        drawn = confusion_figure(confusion, tuple(run["class_names"]), f"{run['model']}: {split} confusion matrix")
        blocks.append(
            figure(
                f"{prefix}_confusion_{split}.png", drawn, f"{split.capitalize()} images: rows true, columns predicted"
            )
        )
    return blocks


def samples_blocks(run: dict, directory: Path, prefix: str) -> list[dict]:
    blocks = [heading("Sample predictions", 3)]
    png = run_file(directory, evaluation_of(run).sample_predictions)
    if png is None or not png.startswith(b"\x89PNG\r\n\x1a\n"):
        return blocks + [
            paragraph(
                "No sample_predictions.png beside this run's metrics.json (evaluate writes it; copied evidence leaves it out)."
            )
        ]
    return blocks + [figure(f"{prefix}_samples.png", png, "The first test images: predicted (true), mistakes in red")]


def calibration_blocks(runs: list[dict], first: dict, prefix: str) -> list[dict]:
    lines = []
    for split in SPLITS:
        ece, top3 = (
            spread_text(*mean_std([run["splits"][split][key] for run in runs])) for key in ("ece", "top3_accuracy")
        )
        lines.append(f"{split}: expected calibration error {ece}, top-3 accuracy {top3}")
    bins = first["splits"]["test"]["reliability"]
    drawn = reliability_figure(bins, f"{first['model']}: test reliability (ECE {first['splits']['test']['ece']:.4f})")
    rows = [
        [f"{b['lower']:.2f}–{b['upper']:.2f}", b["images"], f"{b['confidence']:.3f}", f"{b['accuracy']:.3f}"]
        for b in bins
        if b["images"]
    ]
    return [
        heading("Calibration", 3),
        bullets(lines),
        figure(
            f"{prefix}_reliability_test.png",
            drawn,
            "Test accuracy against confidence, 15 bins; each bar says how many images it holds",
        ),
        table(["confidence bin", "test images", "mean confidence", "accuracy"], rows),
    ]
