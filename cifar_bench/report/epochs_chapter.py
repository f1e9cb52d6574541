"""The study's open question, "increasing the epochs should help (I had no more resource to train them until
120 epochs)", answered from runs trained past the study's 30 epochs.

The runs are ordinary evaluated runs kept in ``DIR/epochs_probes/<model>/<run>/`` (set aside from the table,
as every ``*_probes`` folder is): one seed per VGG16 model, trained with its recipe for more epochs, e.g.
``cifar-bench study --models "[vgg16_last2,vgg16_last3,vgg16_last5]" --seeds "[0]" --results results/epochs_probes
-- --trainer.max_epochs 60``. The chapter reads their validation curves (epoch by epoch, images held out of
training) and gives the test figure only at their end, where each run read it once.
"""

from __future__ import annotations

from pathlib import Path

from cifar_bench.configs import model_config, model_names
from cifar_bench.evaluation.evaluated import runs_kept_in
from cifar_bench.evaluation.reference import study_epochs
from cifar_bench.figures import epochs_figure
from cifar_bench.report.blocks import figure, heading, paragraph, table
from cifar_bench.run_folder import is_count, is_fraction, read_config

EPOCHS_FOLDER = "epochs_probes"
QUESTION = "Although increasing the epochs should help. (I had no more resource to train them until 120 epochs)."
HEADINGS = (
    "model|epochs trained|recipe's epochs|val acc then|study's epochs|val acc then|val acc at the end|best val acc|"
    "test acc at the end|the recipe's run of the seed: val acc at its end|its test acc"
).split("|")


def recipe_epochs(model: str) -> int | None:
    """The epochs of the model's packaged recipe (configs/<model>.yaml); None for a model without one."""
    if model not in model_names():
        return None
    epochs = (read_config(model_config(model), "reinstall the package").get("trainer") or {}).get("max_epochs")
    return epochs if isinstance(epochs, int) else None


def validation_curve(run: dict) -> dict | None:
    """A run's validation accuracy per epoch from its metrics.json: whole epochs and accuracies from 0 to 1, as many
    of each; None where the file holds no such curve (the model is then left out of the chapter)."""
    points = (run.get("curves") or {}).get("val/acc") if isinstance(run.get("curves"), dict) else None
    if not isinstance(points, dict):
        return None
    epochs, values = points.get("epoch"), points.get("value")
    if not isinstance(epochs, list) or not isinstance(values, list) or not epochs or len(epochs) != len(values):
        return None
    whole = all(map(is_count, epochs)) and all(map(is_fraction, values))
    return {"epoch": epochs, "value": values} if whole else None


def value_at(points: dict[str, list], epoch: int) -> str:
    """The curve's value at ``epoch``, or '-' where the run was not validated then."""
    by_epoch = dict(zip(points["epoch"], points["value"]))
    return f"{by_epoch[epoch]:.4f}" if epoch in by_epoch else "-"


def recipe_run_figures(run: dict, table_runs: list[dict], epochs: int | None) -> list[str]:
    """The final validation and the test accuracy of the table's one run of the same seed that trained the
    recipe's ``epochs`` (its schedule not stretched): what the longer run is to be compared with; '-' where
    there is no such run, or more than one."""
    seed = run.get("seed")
    same = [other for other in table_runs if seed is not None and other.get("seed") == seed]
    same = [other for other in same if epochs is not None and other.get("epochs_trained") == epochs]
    if len(same) != 1:
        return ["-", "-"]
    points = validation_curve(same[0])
    return [f"{points['value'][-1]:.4f}" if points else "-", f"{same[0]['splits']['test']['accuracy']:.4f}"]


def epochs_chapter(directory: Path, order: list[str], table_runs: dict[str, list[dict]]) -> list[dict]:
    """Validation accuracy against epochs for each model with a run in ``DIR/epochs_probes``, its value at our
    recipe's epochs and the study's, its best and last, and the test accuracy of the weights it ended with,
    beside the table's run of the same seed (``table_runs``)."""
    blocks = [heading("More epochs: the study's open question", anchor="epochs"), paragraph(f"The study: “{QUESTION}”")]
    runs = runs_kept_in(directory, EPOCHS_FOLDER)
    models = [model for model in order if model in runs] + sorted(set(runs) - set(order))
    curves = {model: points for model in models if (points := validation_curve(runs[model][0])) is not None}
    if not curves:
        return blocks + [
            paragraph(
                f"No run trained past its recipe's epochs in {EPOCHS_FOLDER}/ here: train one seed per model with more "
                f"epochs into {EPOCHS_FOLDER}/ (cifar-bench study --results {EPOCHS_FOLDER} -- --trainer.max_epochs 60)."
            )
        ]
    rows = []
    for model, points in curves.items():
        run, study, recipe = runs[model][0], study_epochs(model), recipe_epochs(model)
        best = max(range(len(points["value"])), key=points["value"].__getitem__)
        rows.append([
            model, max(points["epoch"]), recipe or "-", value_at(points, recipe) if recipe else "-", study or "-",
            value_at(points, study) if study else "-", f"{points['value'][-1]:.4f}",
            f"{points['value'][best]:.4f} (epoch {points['epoch'][best]})", f"{run['splits']['test']['accuracy']:.4f}",
            *recipe_run_figures(run, table_runs.get(model, []), recipe),
        ])  # fmt: skip
    marks = sorted({epochs for model in curves for epochs in (recipe_epochs(model), study_epochs(model)) if epochs})
    caption = f"Validation accuracy per epoch, one seed per model; dashed: epochs {', '.join(map(str, marks))}."
    return blocks + [
        paragraph(
            "One seed per model, each trained with its recipe (the cosine schedule stretched over the longer run) "
            "past the study's epochs; validation accuracy is on images held out of training, and the test split is "
            "read once, for the weights each run ended with. At the recipe's epochs the longer run is mid-schedule; "
            "the last two columns are the table's run of the same seed, which ended there."
        ),
        table(HEADINGS, rows),
        figure("epochs.png", epochs_figure(curves, marks, "Validation accuracy against epochs"), caption),
    ]
