"""The dataset analysis: tables on the console, and analysis.json / samples.png whose numbers match numpy's."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from conftest import run_cli, write_binary_version
from PIL import Image
from rich.console import Console

from cifar_bench.data.sources import CLASS_NAMES
from cifar_bench.evaluation.analyze import analyze


def unbalanced_batches(seed: int = 11) -> list[tuple[np.ndarray, np.ndarray]]:
    """Six 40-image batches whose labels are drawn at random, so classes are unevenly spread over batches."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 256, (40, 3072), dtype=np.uint8), rng.integers(0, 10, 40)) for _ in range(6)]


def table_rows(text: str, first_cell: str) -> list[list[int]]:
    """The numbers in each console table row that starts with ``first_cell``, top to bottom."""
    lines = [line for line in text.splitlines() if re.match(rf"^\W*{first_cell}\W", line)]
    return [[int(number) for number in re.findall(r"\d+", line)] for line in lines]


@pytest.fixture
def analysed(tmp_path):
    batches = unbalanced_batches()
    write_binary_version(tmp_path / "data", batches)
    console = Console(file=io.StringIO(), width=120)
    summary = analyze(tmp_path / "data", download=False, out=tmp_path / "out", samples_per_class=3, console=console)
    return batches, summary, console.file.getvalue(), tmp_path / "out"


def test_analysis_json_holds_the_counts_numpy_finds(analysed):
    batches, summary, _, out = analysed
    written = json.loads((out / "analysis.json").read_text())
    assert written == summary
    train_labels = np.concatenate([labels for _, labels in batches[:5]])
    assert written["class_names"] == list(CLASS_NAMES)
    assert written["images"] == {"train": 200, "test": 40}
    assert list(written["per_class"]["train"].values()) == np.bincount(train_labels, minlength=10).tolist()
    assert list(written["per_class"]["test"].values()) == np.bincount(batches[5][1], minlength=10).tolist()
    assert [batch["file"] for batch in written["train_batches"]] == [f"data_batch_{i}.bin" for i in range(1, 6)]
    for batch, (_, labels) in zip(written["train_batches"], batches[:5]):
        counts = np.bincount(labels, minlength=10)
        assert list(batch["per_class"].values()) == counts.tolist()
        assert (batch["min"], batch["max"], batch["images"]) == (counts.min(), counts.max(), 40)
    assert written["image_shape"] == [3, 32, 32] and written["dtype"] == "uint8"


def test_channel_statistics_equal_numpy_over_the_training_pixels(analysed):
    batches, summary, _, _ = analysed
    pixels = np.concatenate([images for images, _ in batches[:5]]).reshape(-1, 3, 32, 32) / 255.0
    np.testing.assert_allclose(list(summary["channel_mean"].values()), pixels.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(list(summary["channel_std"].values()), pixels.std(axis=(0, 2, 3)), rtol=1e-9)


def test_console_tables_show_splits_per_class_batch_imbalance_format_and_channels(analysed):
    batches, summary, text, _ = analysed
    for title in (
        "Images per split and class",
        "Training images per class in each official batch",
        "Image format",
        "Per-channel statistics",
    ):
        assert title in text
    train, test = summary["per_class"]["train"], summary["per_class"]["test"]
    for name in CLASS_NAMES:
        split_row, batch_row = table_rows(text, name)
        assert split_row == [train[name], test[name], train[name] + test[name]]
        assert batch_row == [batch["per_class"][name] for batch in summary["train_batches"]]
    assert table_rows(text, "min") == [[batch["min"] for batch in summary["train_batches"]]]
    assert table_rows(text, "max") == [[batch["max"] for batch in summary["train_batches"]]]
    assert "3 x 32 x 32" in text and "uint8" in text
    assert f"{summary['channel_mean']['red']:.4f}" in text and f"{summary['channel_std']['blue']:.4f}" in text


def test_sample_grid_is_a_png_of_the_first_images_of_every_class(analysed):
    batches, summary, _, out = analysed
    with Image.open(out / "samples.png") as image:
        assert image.format == "PNG" and image.height > image.width  # ten rows (classes) of three
        image.verify()
    train_labels = np.concatenate([labels for _, labels in batches[:5]])
    picked = summary["samples"]["train_indices"]
    assert train_labels[picked].tolist() == np.repeat(np.arange(10), 3).tolist()
    first_three = [np.flatnonzero(train_labels == label)[:3].tolist() for label in range(10)]
    assert picked == sum(first_three, [])
    assert sorted(path.name for path in out.iterdir()) == ["analysis.json", "samples.png"]


@pytest.mark.slow  # its own Python process
def test_cli_analyze_prints_tables_and_writes_both_files(tmp_path):
    write_binary_version(tmp_path / "data", unbalanced_batches())
    result = run_cli(
        "analyze",
        "--data_dir",
        str(tmp_path / "data"),
        "--download",
        "false",
        "--out",
        str(tmp_path / "out"),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Images per split and class" in result.stdout
    assert json.loads((tmp_path / "out" / "analysis.json").read_text())["images"] == {"train": 200, "test": 40}
    assert (tmp_path / "out" / "samples.png").read_bytes().startswith(b"\x89PNG")
