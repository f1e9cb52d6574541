"""``cifar-bench compare``: the study's "Results & Comparisons" table, built from the evaluated runs under a
folder (``evaluate``'s metrics.json: compare needs no data), one row per model with its interval beside the
study's figure; ``--pair`` adds a paired comparison of two models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import torch
from rich.console import Console
from rich.table import Table

from cifar_bench.data.sources import NUM_CLASSES
from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.evaluated import COUNTS, SET_ASIDE, collect
from cifar_bench.evaluation.evaluation_files import format_duration
from cifar_bench.evaluation.paired import paired_comparison, paired_lines
from cifar_bench.evaluation.pretrained import loads_pretrained_weights, params_text, run_weights_text
from cifar_bench.evaluation.reference import STUDY_RANDOM_ACCURACY, study_accuracy
from cifar_bench.evaluation.statistics import t_interval, wilson_interval
from cifar_bench.evaluation.store_time import built_once_text, row_times, share_text, shared_stores
from cifar_bench.io import user_path
from cifar_bench.output import (
    csv_text,
    literal_text,
    markdown_escaped,
    output_location,
    print_plain,
    print_whole,
    write_json,
    write_text,
)

RANDOM_MODEL = "Random classifier"
COLUMNS = (
    *"model runs failed test_accuracy_mean test_accuracy_std test_accuracy_ci_low test_accuracy_ci_high".split(),
    *"test_accuracy_ci_method study_test_accuracy difference_to_study versus_study".split(),
    *"train_accuracy_mean train_accuracy_std".split(),
    *COUNTS,
    *"training_time_s_mean training_time_s_std weights feature_store_build_s feature_store_share_s".split(),
)
WEIGHTS_HEADING = "Starting weights (which layers were pretrained, from which file, and which started random):"
HEADINGS = tuple(
    (
        "Model|Runs|Test accuracy|Test 95% CI|Study|Difference|Versus study|Train accuracy|Weight layers|Epochs|"
        "Trainable / total params|Training time"
    ).split("|")
)


def _interval(low: float, high: float, method: str) -> dict:
    return {"test_accuracy_ci_low": low, "test_accuracy_ci_high": high, "test_accuracy_ci_method": method}


def accuracy_interval(runs: list[dict]) -> dict:
    """The 95% interval of a model's test accuracy: Wilson on the test images for one run, t across runs for several."""
    if len(runs) == 1:
        test = runs[0]["splits"]["test"]
        return _interval(*wilson_interval(test["correct"], test["images"]), "wilson")
    return _interval(*t_interval([run["splits"]["test"]["accuracy"] for run in runs]), f"t ({len(runs)} runs)")


def versus_study(row: dict) -> str:
    """Where the study's exact figure lies against the row's interval: "clear" (below the interval: ours is
    higher beyond the noise), "below" (above it), otherwise "tied"."""
    low, high, study = row["test_accuracy_ci_low"], row["test_accuracy_ci_high"], row["study_test_accuracy"]
    return "clear" if study < low else "below" if study > high else "tied"


def interval_cell(row: dict) -> str:
    """The interval, with its kind where it is not the t interval over seeds (one run's Wilson interval, the
    random row's binomial one of uniform guessing): the column never mixes kinds silently."""
    if row.get("test_accuracy_ci_low") is None:
        return "-"
    method = row["test_accuracy_ci_method"]
    kind = "" if method.startswith("t (") else " (Wilson, 1 run)" if method == "wilson" else " (uniform guessing)"
    return f"[{row['test_accuracy_ci_low']:.4f}, {row['test_accuracy_ci_high']:.4f}]{kind}"


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean, and the sample standard deviation when there are two values or more."""
    tensor = torch.tensor(values, dtype=torch.float64)
    return tensor.mean().item(), (tensor.std().item() if len(values) > 1 else None)


def _distinct(values) -> int | str | None:
    """A field that should agree across runs of one model: the value, or all values if they differ."""
    unique = list(dict.fromkeys(values))
    return unique[0] if len(unique) == 1 else " / ".join(str(value) for value in unique)


def model_row(model: str, runs: list[dict], failures: list[dict], store: dict | None = None) -> dict:
    """A model's row; ``store``, the feature store its runs share with other rows (``shared_stores``): its time
    is then the runs' time without the store, with the row's share of the store's build beside it."""
    row = {"model": model, "runs": len(runs), "failed": len(failures), "study_test_accuracy": study_accuracy(model)}
    if not runs:
        return row
    for split in ("test", "train"):
        row[f"{split}_accuracy_mean"], row[f"{split}_accuracy_std"] = mean_std(
            [run["splits"][split]["accuracy"] for run in runs]
        )
    row.update(accuracy_interval(runs))
    if row["study_test_accuracy"] is not None:
        row["difference_to_study"] = row["test_accuracy_mean"] - row["study_test_accuracy"]
        row["versus_study"] = versus_study(row)
    for key in COUNTS:
        row[key] = _distinct(run.get(key) for run in runs)
    row["pretrained"] = any(map(loads_pretrained_weights, runs))
    weights = [run_weights_text(run) for run in runs]
    if any(weights):
        row["weights"] = _distinct(text or "none" for text in weights)
    times = row_times(runs, store)
    if times:
        row["training_time_s_mean"], row["training_time_s_std"] = mean_std(times)
    if store:
        row |= {"feature_store_build_s": store["build_s"], "feature_store_share_s": store["share_s"], "store": store}
    return row


def evaluated_test_images(runs: dict[str, list[dict]]) -> int | None:
    """How many test images the runs were evaluated on (each metrics.json says); the most common count
    if they differ, the larger on a tie."""
    counts = [run["splits"]["test"]["images"] for group in runs.values() for run in group]
    return max(counts, key=lambda count: (counts.count(count), count)) if counts else None


def random_row(images: int | None) -> dict:
    """Uniform guessing: its expected accuracy, and the Wilson interval of such a guesser's expected count of
    right answers (rounded to whole answers) on ``images`` test images (none without evaluated runs)."""
    expected = 1 / NUM_CLASSES  # the expected accuracy of uniform guessing, not one seeded draw
    row = {"model": RANDOM_MODEL, "runs": 1, "failed": 0, "test_accuracy_mean": expected}
    row |= {"study_test_accuracy": STUDY_RANDOM_ACCURACY, "train_accuracy_mean": expected}
    row |= dict.fromkeys(("weight_layers", "epochs_trained", "trainable_params", "total_params"), 0)
    if images is not None:
        row |= _interval(*wilson_interval(round(images / NUM_CLASSES), images), f"binomial ({images} images)")
    return row


def table_rows(runs: dict[str, list[dict]], failures: dict[str, list[dict]], models) -> list[dict]:
    """The table's rows: the Random classifier's, then one per model of ``models``, in that order."""
    stores = shared_stores(runs)
    return [random_row(evaluated_test_images(runs))] + [
        model_row(model, runs.get(model, []), failures.get(model, []), stores.get(model)) for model in models
    ]


def spread_text(mean: float, std: float | None) -> str:
    """A mean, with its standard deviation where there is one."""
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def _accuracy_cell(row: dict, split: str) -> str:
    mean = row.get(f"{split}_accuracy_mean")
    return "failed" if mean is None else spread_text(mean, row.get(f"{split}_accuracy_std"))


def display_cells(row: dict) -> list[str]:
    """One table row as text, the same for the terminal and the Markdown file."""
    runs = str(row["runs"]) + (f" ({row['failed']} failed)" if row["failed"] else "")
    params = "-" if row.get("trainable_params") is None else params_text(row, row.get("pretrained", False))
    time = row.get("training_time_s_mean")
    time_cell = format_duration(time) + (
        f" ± {format_duration(row['training_time_s_std'])}" if row.get("training_time_s_std") else ""
    )
    if row.get("store"):
        time_cell += share_text(row["store"])
    return [
        row["model"],
        runs,
        _accuracy_cell(row, "test"),
        interval_cell(row),
        "-" if row.get("study_test_accuracy") is None else f"{row['study_test_accuracy']:.4f}",
        "-" if row.get("difference_to_study") is None else f"{row['difference_to_study']:+.4f}",
        row.get("versus_study", "-"),
        _accuracy_cell(row, "train"),
        str(row.get("weight_layers", "-")),
        str(row.get("epochs_trained", "-")),
        params,
        time_cell if time is not None else "-",
    ]


def total_time_line(rows: list[dict]) -> str:
    """The time the table takes with one run per model: the sum of each model's mean training time, and each
    feature store the rows read built once, on its own."""
    timed = [row for row in rows if row.get("training_time_s_mean") is not None]
    untimed = [row["model"] for row in rows if row["model"] != RANDOM_MODEL and row.get("training_time_s_mean") is None]
    stores = {row["store"]["digest"]: row["store"] for row in timed if row.get("store")}.values()
    total = sum(row["training_time_s_mean"] for row in timed) + sum(store["build_s"] for store in stores)
    line = f"Training time of the table, one run per model: {format_duration(total)} ({len(timed)} models)"
    line += "".join(f", of which {built_once_text(store)}" for store in stores)
    return line + (f"; no time for {', '.join(untimed)}" if untimed else "")


def weights_lines(rows: list[dict]) -> list[str]:
    """Per row of a model started from pretrained weights (VGG16), what they were: which layers pretrained,
    from which file (name and SHA-256), which random, which frozen random."""
    return [f"{row['model']}: {row['weights']}" for row in rows if row.get("weights")]


def markdown_table(rows: list[dict]) -> str:
    """comparison.md's table, total time and starting weights, every text through the Markdown escaper (a model
    is named by a folder)."""
    lines = ["| " + " | ".join(HEADINGS) + " |", "|" + "|".join(" --- " for _ in HEADINGS) + "|"]
    lines += ["| " + " | ".join(map(markdown_escaped, display_cells(row))) + " |" for row in rows]
    text = "\n".join(lines) + "\n\n" + markdown_escaped(total_time_line(rows)) + "\n"
    weights = weights_lines(rows)
    if weights:
        text += "\n" + WEIGHTS_HEADING + "\n\n" + "".join(f"- {markdown_escaped(line)}\n" for line in weights)
    return text


def print_table(console: Console, directory: Path, rows: list[dict]) -> None:
    table = Table(title=literal_text(f"Results & comparisons ({directory})"))
    for heading in HEADINGS:
        table.add_column(heading, justify="left" if heading == "Model" else "right")
    for row in rows:
        table.add_row(*map(literal_text, display_cells(row)))  # a model named like markup is shown as named
    print_whole(console, table)
    print_plain(console, total_time_line(rows))
    weights = weights_lines(rows)
    if weights:
        print_plain(console, "\n".join([WEIGHTS_HEADING, *(f"  {line}" for line in weights)]))


def compare(
    directory: str,
    out: Optional[str] = None,
    pair: Optional[list[str]] = None,
    set_aside: Sequence[str] = SET_ASIDE,
    console: Optional[Console] = None,
) -> list[dict]:
    """Compare evaluated runs (the study's results table): print it, write comparison.md and .csv.

    Args:
        directory: folder searched for evaluated runs (the logger's save_dir, e.g. lightning_logs).
        out: where comparison.md and comparison.csv go (default: DIRECTORY).
        pair: two models to compare on the same test images, e.g. [cnn,cnn_bn_do]: the accuracy
            difference with its 95% interval and McNemar's exact p (the runs of the first seed both
            have), and over every seed both have when there are two or more; also written to
            comparison_pair.json.
        set_aside: folders below DIRECTORY not searched, by name pattern: evidence kept beside a table
            (results/superseded/, results/*_probes/, results/*_beside/); [] searches every folder.

    Returns the rows, the Random classifier first.
    """
    console = console or Console()
    directory = user_path(directory)
    if not directory.is_dir():
        raise CifarBenchError(f"no folder {directory}: pass the folder that holds the runs (the logger's save_dir)")
    out = output_location(out, folder=True) if out is not None else directory
    runs, failures = collect(directory, skip=set_aside)
    if not runs and not failures:
        raise CifarBenchError(
            f"no evaluated runs under {directory}: run `cifar-bench evaluate --ckpt <run>/checkpoints/last.ckpt` first"
        )
    rows = table_rows(runs, failures, sorted(runs.keys() | failures.keys()))
    print_table(console, directory, rows)
    paired = paired_comparison(list(pair), runs) if pair else None
    markdown = markdown_table(rows)
    if paired is not None:
        lines = paired_lines(paired)
        print_plain(console, "\n".join(lines))
        markdown += "\n" + "\n".join(map(markdown_escaped, lines)) + "\n"
        write_json(out / "comparison_pair.json", paired)
    write_text(out / "comparison.md", markdown)
    write_text(out / "comparison.csv", csv_text(list(COLUMNS), ([row.get(key, "") for key in COLUMNS] for row in rows)))
    print_plain(console, f"Written to {out / 'comparison.md'} and {out / 'comparison.csv'}")
    return rows
