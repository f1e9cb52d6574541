"""The report's chapter "How the recipes were chosen": each model's sweep (``DIR/sweep/<model>/``), read back
as untrusted files, with its best recipe set beside what the evaluated runs trained with; a model without a
sweep is named, its recipe being the packaged config's, chosen by hand; and the runs of earlier recipes kept in
``DIR/superseded/<name>/<run>/``, listed as history."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.compare import mean_std
from cifar_bench.evaluation.evaluated import SUPERSEDED, evaluation_of, runs_kept_in
from cifar_bench.evaluation.evaluation_files import format_duration
from cifar_bench.figures import sweep_history_figure
from cifar_bench.output import place
from cifar_bench.report.blocks import figure, heading, paragraph, run_config, run_file, table
from cifar_bench.run_folder import read_config
from cifar_bench.sweep.folder import BEST_YAML, SWEEPS_FOLDER, read_sweep, sweep_folders

MAX_TRIAL_ROWS = 40  # the best trials shown as a table; the figure shows them all


def recipes_chapter(runs: dict[str, list[dict]], directory: Path, order: list[str]) -> list[dict]:
    sweeps = sweep_folders(directory)
    blocks = [
        heading("How the recipes were chosen", anchor="recipes"),
        paragraph(
            "A recipe is chosen on validation accuracy alone (images held out of the training split): "
            f"cifar-bench sweep searches it, one Optuna trial per fit, and never reads the test split, which "
            f"each final run's evaluation reads once. Sweeps are read from {place(directory / SWEEPS_FOLDER, Path.cwd())}/<model>/."
        ),
    ]
    unswept = [model for model in order if model not in sweeps]
    if unswept:
        blocks.append(
            paragraph(
                f"No sweep here for {', '.join(unswept)}: their recipes are the packaged configs', each saying "
                "where its recipe comes from (another model's sweep, as the VGG16 family's from vgg16_last3's, or "
                "set by hand: the repository's results/recipe_history.md keeps how, including choices made after "
                "reading test accuracy)."
            )
        )
    swept = [model for model in order if model in sweeps] + sorted(set(sweeps) - set(order))
    for number, model in enumerate(swept, start=1):
        try:
            blocks += sweep_blocks(model, sweeps[model], runs.get(model, []), directory, f"sweep{number}")
        except (CifarBenchError, RecursionError) as error:
            blocks += [heading(f"Sweep of {model}", 3), paragraph(f"Left out: {error}")]
    return blocks + history_blocks(directory)


def history_blocks(directory: Path) -> list[dict]:
    """The runs of earlier recipes (``DIR/superseded/<name>/<run>/``), one row per name and model: history, set
    by hand before the protocol, some after their test accuracy was read; never in the table."""
    heading_block = heading("Earlier recipes (history)", 3)
    try:
        runs = runs_kept_in(directory, SUPERSEDED)
    except CifarBenchError as error:
        return [heading_block, paragraph(f"Left out: {error}")]
    named: dict[tuple[str, str], list[dict]] = {}
    for model, group in runs.items():
        for run in group:
            named.setdefault((run["run_name"].split("/")[0], model), []).append(run)
    if not named:
        return []
    rows = [
        [name, model, len(group), f"{mean_std([run['splits']['test']['accuracy'] for run in group])[0]:.4f}",
         ", ".join(str(epochs) for epochs in sorted({run.get("epochs_trained") for run in group} - {None})) or "-"]
        for (name, model), group in sorted(named.items())
    ]  # fmt: skip
    return [
        heading_block,
        paragraph(
            f"Runs of the recipes before these, kept in {place(directory / SUPERSEDED, Path.cwd())}/ and never in the "
            "table: set by hand, several changed after their test accuracy was read (the repository's "
            "results/recipe_history.md says which and why)."
        ),
        table(["folder", "model", "runs", "test acc (mean)", "epochs"], rows),
    ]


def sweep_blocks(model: str, folder: Path, group: list[dict], directory: Path, prefix: str) -> list[dict]:
    sweep = read_sweep(folder)
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sweep["trials"].items() if n)
    best = sweep["best"]
    blocks = [
        heading(f"Sweep of {model}", 3),
        paragraph(
            f"Study {sweep['study_name']!r}: {sum(sweep['trials'].values())} trials ({counts or 'none'}), "
            f"{format_duration(sweep['wall_s'])} from the first start to the last end "
            f"({format_duration(sweep['trial_time_s'])} of trials)."
            + (
                f" Best: trial {best['number']}, validation accuracy {best['value']:.4f}."
                if best
                else " No trial completed."
            )
        ),
    ]
    if best:
        blocks += best_recipe_blocks(folder, group, directory)
    shown = sorted(sweep["rows"], key=lambda t: (t["value"] is None, -(t["value"] or 0), t["number"]))[:MAX_TRIAL_ROWS]
    names = sorted({name for trial in shown for name in trial["params"]})
    blocks.append(
        table(
            ["trial", "state", "val/acc", "time", *names],
            [
                [
                    t["number"],
                    t["state"].lower(),
                    "-" if t["value"] is None else f"{t['value']:.4f}",
                    format_duration(t["duration_s"]),
                    *(t["params"].get(name, "") for name in names),
                ]
                for t in shown
            ],
        )  # fmt: skip
    )
    if len(sweep["rows"]) > MAX_TRIAL_ROWS:
        blocks.append(paragraph(f"The {MAX_TRIAL_ROWS} best of {len(sweep['rows'])} trials; the figure shows all."))
    drawn = sweep_history_figure(sweep["rows"], f"{model}: sweep history")
    caption = "Validation accuracy of each trial (pruned: at its last epoch) and the best so far."
    return blocks + [figure(f"{prefix}_history.png", drawn, caption)]


def best_recipe_blocks(folder: Path, group: list[dict], directory: Path) -> list[dict]:
    """The best recipe's settings beside those each evaluated run of the model trained with."""
    best = run_file(directory, folder / BEST_YAML, lambda path: read_config(path, "rerun the sweep"))
    if best is None:
        return [paragraph(f"No readable {BEST_YAML} in {folder}: the best recipe is not shown.")]
    settings = leaves(best)
    configs = [run_config(directory, evaluation_of(run).run) for run in group]
    ran = [leaves(config) for config in configs if config is not None]
    rows = [
        [name.replace(".init_args", ""), shown(value), *(shown(config.get(name, "-")) for config in ran)]
        for name, value in settings.items()
    ]
    differing = sum(any(not same(value, config.get(name)) for name, value in settings.items()) for config in ran)
    verdict = (
        "No evaluated run of this model here."
        if not group
        else f"{len(ran) - differing} of {len(group)} evaluated runs trained with this recipe"
        + (f"; {differing} with another." if differing else ".")
    )
    run_names = [f"run {run.get('run_name', '?')}" for run, config in zip(group, configs) if config is not None]
    return [table(["setting", "sweep's best", *run_names], rows), paragraph(verdict)]


def leaves(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        flat |= leaves(value, f"{name}.") if isinstance(value, dict) else {name: value}
    return flat


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
    return a == b


def shown(value) -> str:
    return (
        f"{value:.4g}"
        if isinstance(value, float)
        else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
    )
