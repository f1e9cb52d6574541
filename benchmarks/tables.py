"""The tables ``python -m benchmarks`` prints, and the targets its results are checked against."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

from cifar_bench.output import print_whole

# (what, where in the results, at least / at most, threshold): issue 36's targets, each checked where measured.
STORE_FED = ("vgg16_last2", "vgg16_last3", "vgg16_last5")
TARGETS = (
    *((f"{name} store-fed tail, share of peak", ("models", name, "package_store_fed", "fraction_of_peak"), ">=", 0.45)
      for name in STORE_FED),
    *((f"{name} whole network, share of peak", ("models", name, "package", "fraction_of_peak"), ">=", 0.70)
      for name in STORE_FED),
    *((f"{name} package vs plain loop, time added", ("models", name, "lightning_overhead"), "<=", 0.05)
      for name in ("mlp", "cnn", "cnn_bn_do")),
    ("cnn, share of peak", ("models", "cnn", "package", "fraction_of_peak"), ">=", 0.75),
    ("cnn evaluate of 60,000 images, share of peak", ("evaluate", "fraction_of_peak"), ">=", 0.60),
)  # fmt: skip


def check_targets(results: dict) -> list[dict]:
    checked = []
    for what, path, relation, threshold in TARGETS:
        value = results
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        met = value >= threshold if relation == ">=" else value <= threshold
        checked.append({"target": what, "value": value, "relation": relation, "threshold": threshold, "met": met})
    return checked


# --- output ----------------------------------------------------------------------------------------
# Width of the console when output is piped or redirected: rich would otherwise cut the widest table to 80 columns.
def speed(value: float) -> str:
    return f"{value:,.0f}"


def flop_rate(figures: dict) -> tuple[str, str]:
    """Achieved GFLOP/s and the share of the matching matmul peak, as table cells."""
    return f"{figures['gflop_s']:,.1f}", f"{figures['fraction_of_peak']:.1%}"


def table(title: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> Table:
    result = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        result.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        result.add_row(*row)
    return result


def print_tables(results: dict, console: Console) -> None:
    """Every table and line of a bench run, as the terminal shows it (whole, even when piped)."""
    info = results["machine"]
    console.print(
        f"[bold]python -m benchmarks[/]: {info['cpu']}, {info['cores']} cores, {info['torch_threads']} threads, torch {info['torch']}"
    )
    peaks = ", ".join(f"{peak['device']} {peak['dtype']} {peak['gflop_s']:,.1f}" for peak in results["peaks"])
    console.print(f"matmul peak (GFLOP/s, {results['peaks'][0]['threads']} threads): {peaks}")
    for build in (training_table, store_table, evaluation_table, levers_table, sweeps_table):
        built = build(results)
        if built is not None:
            print_whole(console, built)
    for line in closing_lines(results):
        console.print(line)


TRAINING_COLUMNS = (
    *("training", "precision", "img/s", "study img/s", "x study"),
    *("GFLOP/s", "% of peak", "study GFLOP/s", "study % of peak"),
    *("epoch s", "study epoch s", "Lightning overhead", "of it, callbacks"),
)


def training_table(results: dict) -> Table:
    rows = []
    for name, row in results["models"].items():
        overhead, callbacks, baseline = row.get("lightning_overhead"), row.get("callbacks_overhead"), row["baseline"]
        for label, figures in ((name, row["package"]), (f"{name} store-fed", row.get("package_store_fed"))):
            if figures is None:
                continue
            rows.append(
                (
                    *(label, row["precision"], speed(figures["images_per_s"]), speed(baseline["images_per_s"])),
                    f"{figures['images_per_s'] / baseline['images_per_s']:.1f}",
                    *flop_rate(figures),
                    *flop_rate(baseline),
                    *(f"{figures['epoch_s']:.1f}", f"{baseline['epoch_s']:.1f}"),
                    "" if overhead is None or label != name else f"{overhead:.1%}",
                    "" if callbacks is None or label != name else f"{callbacks:.1%}",
                )
            )
    return table("Training: package vs the study's loop (batch 64)", TRAINING_COLUMNS, rows)


def floor_cell(store_fed: dict) -> str:
    """The step's memory floor (moving its trained weights, ``memory_floor_step_s``) and its share of the step."""
    floor = store_fed.get("memory_floor_step_s")
    return "" if floor is None else f"{floor * 1e3:.1f} ({floor / store_fed['step_s']:.0%})"


def store_table(results: dict) -> Table | None:
    stored = [(name, row) for name, row in results["models"].items() if "store" in row]
    if not stored:
        return None
    rows = [
        (
            name,
            f"{row['package']['epoch_s']:.1f}",
            f"{row['package_store_fed']['epoch_s']:.1f}",
            f"{row['ratios']['store_fed_vs_uncached_epoch']:.1f}",
            f"{row['package_store_fed']['step_s'] * 1e3:.1f}",
            floor_cell(row["package_store_fed"]),
            f"{row['store']['views']} x {row['store']['dtype']}",
            "?" if row["store"]["build_s"] is None else f"{row['store']['build_s']:.0f}",
            f"{row['store']['bytes'] / 2**30:.2f}",
        )
        for name, row in stored
    ]
    columns = ("VGG16 feature store", "epoch s", "store-fed epoch s", "x faster", "step ms", "weights' floor ms")
    columns += ("views", "build s", "GiB")
    return table("VGG16 fed from its frozen-feature store", columns, rows)


def evaluation_table(results: dict) -> Table:
    rows = []
    for name, row in results["models"].items():
        study = row["eval"]["baseline"]["images_per_s"]
        for label, figures in row["eval"].items():
            if label != "baseline":
                label = name if label == "package" else f"{name} ({label})"
                ratio = f"{figures['images_per_s'] / study:.1f}"
                rows.append((label, str(figures["batch_size"]), speed(figures["images_per_s"]), speed(study), ratio))
    columns = ("evaluation", "batch", "img/s", "study img/s", "x study")
    return table("Evaluation: package vs the study's loop (batch 64)", columns, rows)


def levers_table(results: dict) -> Table | None:
    rows = [
        (name, label, speed(figures["images_per_s"]), f"{figures['images_per_s'] / row['package']['images_per_s']:.2f}")
        for name, row in results["models"].items()
        for label, figures in row.get("levers", {}).items()
    ]
    if not rows:
        return None
    columns = ("model", "setting", "train img/s", "x shipped")
    return table("Levers: one setting changed from the shipped config", columns, rows)


def sweeps_table(results: dict) -> Table | None:
    if not results.get("sweeps"):
        return None
    rows = [
        (row["model"], str(row["batch_size"]), str(row["threads"]), speed(row["images_per_s"]), f"{row['epoch_s']:.1f}")
        for row in results["sweeps"]
    ]
    columns = ("model", "batch", "threads", "img/s", "epoch s")
    return table("Package epoch time vs batch size and threads", columns, rows)


def closing_lines(results: dict) -> list[str]:
    """The 60,000-image evaluation, the accuracy check, a busy-machine warning and the targets, as lines."""
    lines = []
    if results.get("evaluate"):
        evaluation = results["evaluate"]
        lines.append(
            f"evaluate {evaluation['model']}: {evaluation['images']:,} images in {evaluation['seconds']:.1f} s "
            f"(batch {evaluation['batch_size']})"
        )
    if results.get("accuracy_check"):
        check = results["accuracy_check"]
        lines.append(
            f"accuracy check ({check['model']}, {check['epochs']} epochs on {check['train_images']:,} images): "
            f"test accuracy fp32 {check['32-true']['test_acc']:.4f}, bf16-mixed {check['bf16-mixed']['test_acc']:.4f}"
        )
    # The bench itself keeps about one core per thread busy; half as much again means others competed.
    limit = 1.5 * results["machine"]["cores"]
    busy = [name for name, row in results["models"].items() if max(row.get("load_average", [0])) > limit]
    if busy:
        lines.append(
            f"[yellow]warning[/]: the machine was busy (load average above {limit:g}) while timing {', '.join(busy)}: run again"
        )
    for target in results["targets"]:
        mark = "[green]met[/]" if target["met"] else "[red]missed[/]"
        lines.append(
            f"target {target['target']} {target['relation']} {target['threshold']}: {target['value']:.3g} {mark}"
        )
    return lines
