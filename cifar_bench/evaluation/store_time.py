"""Training time like for like when VGG16 rows read one feature store: its build counted once, shared out.

A run records the time its fits spent opening or building a feature store (``feature_store_s``) and which
store it read, with that store's build time, whoever built it (``feature_store``: environment.json, carried
into metrics.json). A row's own time is then its runs' time without the store, and a store's build is shared
out equally among the rows whose runs read it: each row's share shown beside its time, the build once in the
table's total.
"""

from __future__ import annotations

from cifar_bench.evaluation.evaluation_files import format_duration
from cifar_bench.run_folder import is_duration


def time_without_store(run: dict) -> float | None:
    """A run's training time less the time its fits spent opening or building a feature store."""
    time, spent = run.get("training_time_s"), run.get("feature_store_s")
    if not is_duration(time):
        return None
    return max(time - spent, 0.0) if is_duration(spent) else time


def _store_read(runs: list[dict]) -> dict | None:
    """The one store every run of a row read, with a recorded build time; None otherwise."""
    records = [run.get("feature_store") for run in runs]
    if not records or not all(records) or len({record["digest"] for record in records}) != 1:
        return None
    return records[0] if is_duration(records[0].get("build_s")) else None


def shared_stores(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per model whose runs all read one store: the store (``digest``, ``views``, ``build_s``), the ``models``
    that read it, and this row's ``share_s`` of its build."""
    read = {model: store for model, group in runs.items() if (store := _store_read(group)) is not None}
    readers: dict[str, list[str]] = {}
    for model, store in sorted(read.items()):
        readers.setdefault(store["digest"], []).append(model)
    return {
        model: {
            **store,
            "models": readers[store["digest"]],
            "share_s": store["build_s"] / len(readers[store["digest"]]),
        }
        for model, store in read.items()
    }


def row_times(runs: list[dict], store: dict | None) -> list[float]:
    """The training times a row reports: without the store where its runs read a shared one, else as measured."""
    times = [time_without_store(run) if store else run.get("training_time_s") for run in runs]
    return [time for time in times if is_duration(time)]


def share_text(store: dict) -> str:
    """A row's share of its store's build, as its time cell adds it."""
    return f" + {format_duration(store['share_s'])} (1/{len(store['models'])} of the store's build)"


def built_once_text(store: dict) -> str:
    """A store's build as the table's total counts it: once, for every row that read it."""
    return (
        f"the {store['views']}-view feature store's build, once: {format_duration(store['build_s'])} "
        f"(read by {', '.join(store['models'])})"
    )
