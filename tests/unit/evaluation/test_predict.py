"""`cifar-bench predict` and `model.predict`: one's own images through the same preparation as evaluation."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fit_tiny
from PIL import Image
from rich.console import Console
from torchvision.transforms.functional import resize

from cifar_bench.cli import main
from cifar_bench.data import load_cifar10
from cifar_bench.data.images import as_uint8_batch
from cifar_bench.data.sources import CLASS_NAMES
from cifar_bench.evaluation.predict import load_for_prediction, predict

INDEX = 3  # the test image saved as a PNG


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data) -> Path:
    """A CNN (CIFAR normalisation, augmented in training) trained one epoch in fp32 on the tiny copy."""
    logs = tmp_path_factory.mktemp("logs")
    return fit_tiny(tiny_data, logs, "cnn", "--trainer.max_epochs", "1", "--trainer.precision", "32-true")


@pytest.fixture(scope="module")
def tiny_test_set(tiny_data) -> tuple[torch.Tensor, torch.Tensor]:
    """The tiny copy's test images (uint8) and labels."""
    arrays = load_cifar10(tiny_data, download=False)
    return arrays.test_images, arrays.test_labels


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def probabilities_of(row: dict) -> np.ndarray:
    return np.array([float(row[f"p_{name}"]) for name in CLASS_NAMES])


def console() -> Console:
    return Console(width=200, record=True)


def test_without_inputs_the_test_set_is_predicted_with_its_true_labels(run, tiny_test_set, capsys):
    images, labels = tiny_test_set
    main(["predict", "--ckpt", str(run)])
    rows = read_csv(run / "evaluation" / "predictions.csv")
    assert [row["file"] for row in rows] == [f"test[{i}]" for i in range(len(images))]
    assert [row["true_label"] for row in rows] == [CLASS_NAMES[int(label)] for label in labels]
    expected = load_for_prediction(run).predict(images)
    np.testing.assert_allclose(np.stack([probabilities_of(row) for row in rows]), expected.numpy(), atol=2e-6)
    assert [row["predicted"] for row in rows] == [CLASS_NAMES[int(c)] for c in expected.argmax(dim=1)]
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("predictions.csv")


def test_a_test_image_saved_as_png_gets_the_prediction_of_that_test_image(run, tiny_test_set, tmp_path):
    images, _ = tiny_test_set
    Image.fromarray(images[INDEX].permute(1, 2, 0).numpy()).save(tmp_path / "test3.png")
    result = predict(str(run), [str(tmp_path / "test3.png")], out=str(tmp_path / "out.csv"), console=console())
    by_index = load_for_prediction(run).predict(images)[INDEX]
    assert result["probabilities"][0].argmax() == by_index.argmax()
    torch.testing.assert_close(result["probabilities"][0], by_index, atol=1e-6, rtol=1e-5)
    (row,) = read_csv(tmp_path / "out.csv")
    assert row["file"] == str(tmp_path / "test3.png") and row["true_label"] == ""


def test_folders_globs_modes_and_sizes_are_read_and_undecodable_files_skipped_with_a_reason(run, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    rgb.save(photos / "big.jpg")
    rgb.convert("RGBA").save(photos / "alpha.png")
    rgb.convert("L").resize((32, 32)).save(photos / "gray.bmp")
    rgb.convert("P").save(photos / "palette.png")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (photos / "notes.txt").write_text("not an image")
    rgb.resize((32, 32)).save(tmp_path / "extra.webp")
    screen = console()
    result = predict(
        str(run),
        [str(photos), str(tmp_path / "*.webp"), str(tmp_path / "missing.png")],
        out=str(tmp_path / "p.csv"),
        console=screen,
    )
    names = sorted(Path(name).name for name in result["files"])
    assert names == ["alpha.png", "big.jpg", "extra.webp", "gray.bmp", "palette.png"]
    assert result["probabilities"].shape == (5, 10)
    assert sorted(Path(name).name for name, _ in result["skipped"]) == ["broken.png", "missing.png"]
    text = screen.export_text()
    assert text.count("resized to 32x32 with antialiasing") == 1 and "3 of 5 images are not 32x32" in text
    assert "broken.png" in text and "Skipped" in text and "top 3" in text
    assert text.strip().splitlines()[-1].endswith("p.csv")


@pytest.fixture
def typed_inputs(tmp_path, monkeypatch) -> Path:
    """cat.png, photos/ with two images, shots/ with two JPEGs and a text file; the current folder."""
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    for name in ("cat.png", "photos/a.png", "photos/b.bmp", "shots/1.jpg", "shots/2.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        image.save(tmp_path / name)
    (tmp_path / "shots" / "notes.txt").write_text("not an image")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "words",
    [
        # `cifar-bench predict --ckpt RUN cat.png photos/ shots/*.jpg` after the shell expanded the glob
        ["cat.png", "photos/", "shots/1.jpg", "shots/2.jpg"],
        ["--inputs", "[cat.png,photos/,shots/*.jpg]"],
        ["--inputs", "[cat.png,photos/]", "shots/1.jpg", "shots/2.jpg"],
    ],
    ids=["words as a shell expands a glob", "a list", "a list and words"],
)
def test_inputs_are_taken_as_a_shell_user_types_them_or_as_a_list(run, typed_inputs, words):
    main(["predict", "--ckpt", str(run), "--out", "p.csv", *words])
    expected = ["cat.png", "photos/a.png", "photos/b.bmp", "shots/1.jpg", "shots/2.jpg"]
    assert [row["file"] for row in read_csv(typed_inputs / "p.csv")] == expected


def test_no_readable_image_is_one_error_line(run, tmp_path, capsys):
    (tmp_path / "broken.jpg").write_bytes(b"garbage")
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--ckpt", str(run), "--inputs", f"[{tmp_path / 'broken.jpg'}]"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: no readable image among the inputs")


def test_model_predict_takes_pil_images_or_uint8_tensors_alike(run, tiny_test_set):
    images, _ = tiny_test_set
    model = load_for_prediction(run)
    pil = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in images[:5]]
    torch.testing.assert_close(model.predict(pil), model.predict(images[:5]))
    assert model.predict(images[:5]).sum(dim=1).allclose(torch.ones(5))


def test_other_sizes_are_resized_with_antialiasing_on_the_uint8_tensor():
    images = torch.randint(0, 256, (2, 3, 96, 64), dtype=torch.uint8)
    batch = as_uint8_batch(images)
    assert batch.dtype == torch.uint8 and batch.shape == (2, 3, 32, 32)
    torch.testing.assert_close(batch, resize(images, [32, 32], antialias=True))
    gray = Image.fromarray(np.full((10, 10), 77, dtype=np.uint8))
    assert as_uint8_batch([gray]).unique().tolist() == [77]
