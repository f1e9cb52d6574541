"""The frozen-feature store: VGG16's frozen layers computed once per image and view, shared, verified."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import cli_args, with_random_weights
from filelock import FileLock

from cifar_bench.data.augment import augmented_view
from cifar_bench.data.sources import CLASS_NAMES, CifarArrays
from cifar_bench.errors import CifarBenchError
from cifar_bench.features import store as store_module
from cifar_bench.features.feeding import store_key, stored_arrays
from cifar_bench.features.store import StoreInputs, open_or_build, view_draws
from cifar_bench.models import VGG16Classifier
from cifar_bench.models.networks import VGG16
from cifar_bench.training.lightning_cli import run_lightning_cli

TRAIN, TEST = 12, 4


def uint8_images(count: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def model() -> VGG16Classifier:
    torch.manual_seed(0)
    return VGG16Classifier(trainable_layers=5, weights="none", feature_store="unused", store_views=2).eval()


@pytest.fixture(scope="module")
def arrays() -> CifarArrays:
    labels = torch.arange(TRAIN) % 10
    return CifarArrays(
        uint8_images(TRAIN, 1), labels, uint8_images(TEST, 2), labels[:TEST], (TRAIN,), CLASS_NAMES, Path(".")
    )


def encoder(model: VGG16Classifier, calls: list | None = None, fail_after: int | None = None):
    """The model's frozen layers as a store encodes with them, counting calls, failing as a kill would."""

    def encode(images: torch.Tensor) -> torch.Tensor:
        if calls is not None:
            if fail_after is not None and len(calls) == fail_after:
                raise KeyboardInterrupt
            calls.append(len(images))
        with torch.inference_mode():
            return model.net.run(images, 0, model.store_tap_end)

    return encode


def build(root: Path, model, arrays, dtype: str = "float32", views: int = 2, encode=None, precision="32-true"):
    model.hparams.store_dtype, model.hparams.store_views = dtype, views
    key = store_key(model, arrays, precision)
    inputs = StoreInputs(arrays.train_images, arrays.test_images, model.transform_profile)
    return open_or_build(root, key, inputs, encode or encoder(model), (512, 2, 2), show_progress=False)


def logits_from(model, features: dict, stage: str, count: int) -> torch.Tensor:
    model.use_feature_store(features)
    try:
        with torch.inference_mode():
            return model.logits((None, torch.zeros(count, dtype=torch.long), torch.arange(count)), stage)
    finally:
        model.use_feature_store({})


def whole_network_logits(model, arrays, view: int) -> torch.Tensor:
    """The full network's logits for the training images as augmented in stored view ``view``."""
    profile = model.transform_profile
    flip, degrees = view_draws(view, TRAIN, model.hparams.store_seed, profile)
    with torch.inference_mode():
        return model(augmented_view(arrays.train_images, profile, flip, degrees))


# --- what it computes -----------------------------------------------------------------------------------


def test_logits_from_an_fp32_store_equal_the_whole_networks_for_the_same_augmented_input(model, arrays, tmp_path):
    store = build(tmp_path, model, arrays, "float32")
    for view in range(2):
        expected = whole_network_logits(model, arrays, view)
        assert torch.equal(logits_from(model, {"val": store.train_views[view]}, "val", TRAIN), expected)
    with torch.inference_mode():
        plain = model(model.prepare_inputs(arrays.test_images))
    assert torch.equal(logits_from(model, {"val": store.test_plain}, "val", TEST), plain)


def test_logits_from_an_fp16_store_differ_from_the_whole_networks_only_by_fp16_rounding(model, arrays, tmp_path):
    store = build(tmp_path, model, arrays, "float16")
    assert store.train_views.dtype == np.float16
    expected = whole_network_logits(model, arrays, 1)
    stored = logits_from(model, {"val": store.train_views[1]}, "val", TRAIN)
    assert not torch.equal(stored, expected)
    torch.testing.assert_close(stored, expected, rtol=0, atol=2e-3 * expected.abs().max().item())


def test_training_draws_one_of_the_stored_views_of_each_image_each_time(model, arrays, tmp_path):
    store = build(tmp_path, model, arrays, "float32")
    per_view = torch.stack([whole_network_logits(model, arrays, view) for view in range(2)])
    torch.manual_seed(0)
    drawn = torch.stack([logits_from(model, {"train": store.train_views}, "train", TRAIN) for _ in range(6)])
    matches = (drawn[:, None] == per_view[None]).all(-1)  # (draw, view, image)
    assert (matches.sum(1) == 1).all()  # every logit is exactly one view's
    assert set(matches.float().argmax(1).flatten().tolist()) == {0, 1}


def test_the_last_fresh_epochs_train_the_whole_network_on_fresh_augmentations(arrays, tmp_path):
    torch.manual_seed(0)
    model = VGG16Classifier(trainable_layers=5, weights="none", feature_store="unused", store_views=2, fresh_epochs=1)
    store = build(tmp_path, model.eval(), arrays, "float32")
    model.use_feature_store({"train": store.train_views, "val": store.train_plain})
    batch = (arrays.train_images, torch.zeros(TRAIN, dtype=torch.long), torch.arange(TRAIN))
    for epoch, from_store in ((0, True), (1, True), (2, False)):
        model._trainer = SimpleNamespace(max_epochs=3, current_epoch=epoch)
        inputs = model.network_inputs(batch[0], "train")
        assert (inputs.dtype == torch.uint8) == from_store  # a batch read from the store needs no image prepared
        assert (model.stage_features("train") is not None) == from_store
        assert model.stage_features("val") is store.train_plain  # validation keeps reading the store
    with torch.inference_mode():
        assert torch.equal(model.logits((inputs, *batch[1:]), "train"), model(inputs))
    model._trainer = None


def test_views_are_fixed_by_the_store_seed_alone(model):
    profile = model.transform_profile
    first, again = view_draws(3, 100, 0, profile), view_draws(3, 100, 0, profile)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(view_draws(3, 100, 1, profile)[1], first[1])
    assert first[1].abs().max() <= profile.max_rotation_degrees and 20 < first[0].sum() < 80


# --- keyed, atomic, verified ----------------------------------------------------------------------------


def test_a_change_in_what_determines_the_store_makes_another_and_leaves_the_first(model, arrays, tmp_path):
    first = build(tmp_path, model, arrays, "float32")
    kept = first.train_views.copy()
    more_views = build(tmp_path, model, arrays, "float32", views=3)
    fp16 = build(tmp_path, model, arrays, "float16")
    other_data = CifarArrays(uint8_images(TRAIN, 5), *list(vars(arrays).values())[1:])
    new_images = build(tmp_path, model, other_data, "float32")
    weight = model.net.features[0].weight
    original = weight.detach().clone()
    with torch.no_grad():
        weight[0, 0, 0, 0] += 1
    try:
        new_weights = build(tmp_path, model, arrays, "float32")
    finally:
        with torch.no_grad():
            weight.copy_(original)
    folders = {s.folder for s in (first, more_views, fp16, new_images, new_weights)}
    assert len(folders) == 5 and all(folder.parent == tmp_path for folder in folders)
    assert np.array_equal(build(tmp_path, model, arrays, "float32").train_views, kept)


def test_a_sweep_and_the_final_runs_after_it_share_a_store_and_only_validation_on_test_stores_the_test_images(
    model, arrays
):
    test_unread = dataclasses.replace(arrays, test_images=arrays.test_images[:0], test_labels=arrays.test_labels[:0])
    sweep_trial = store_key(model, stored_arrays(SimpleNamespace(arrays=test_unread, validates_on_test=False)), "32")
    final_run = store_key(model, stored_arrays(SimpleNamespace(arrays=arrays, validates_on_test=False)), "32")
    on_test = stored_arrays(SimpleNamespace(arrays=arrays, validates_on_test=True))
    assert sweep_trial == final_run
    assert on_test is arrays and store_key(model, on_test, "32").digest != final_run.digest


def test_the_store_is_computed_once_and_then_opened(model, arrays, tmp_path):
    calls: list = []
    build(tmp_path, model, arrays, encode=encoder(model, calls))
    built = len(calls)
    build(tmp_path, model, arrays, encode=encoder(model, calls))
    assert built == 4 and len(calls) == built  # 2 views, train plain, test plain: one chunk each


def test_a_killed_build_is_never_used_and_the_next_one_continues_where_it_stopped(model, arrays, tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "CHUNK_IMAGES", 4)  # 3 chunks a view, 3 plain, 1 test: 10 chunks
    reference = build(tmp_path / "reference", model, arrays)
    calls: list = []
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "stores", model, arrays, encode=encoder(model, calls, fail_after=4))
    assert [p.name.endswith(".partial") for p in (tmp_path / "stores").iterdir() if p.is_dir()] == [True]
    resumed = build(tmp_path / "stores", model, arrays, encode=encoder(model, calls))
    assert len(calls) == 10  # 4 before the kill, the 6 left after it
    for name in ("train_views", "train_plain", "test_plain"):
        assert np.array_equal(getattr(resumed, name), getattr(reference, name))


def link_in_place(path: Path) -> None:
    """``path`` replaced by a link to its own content, moved beside it."""
    path.rename(path.with_name("moved.npy"))
    path.symlink_to("moved.npy")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: (folder / "train_views.npy").write_bytes(b"\x93NUMPY"), "train_views.npy is not an array"),
        (
            lambda folder: open(folder / "test_plain.npy", "r+b").truncate(1000),
            r"test_plain.npy is not an array file \(mmap length is greater than file size\)",
        ),
        (
            lambda folder: open(folder / "test_plain.npy", "ab").write(b"\0"),
            r"test_plain.npy has [\d,]+ bytes, expected",
        ),
        (
            lambda folder: np.save(folder / "test_plain.npy", np.load(folder / "test_plain.npy").astype(np.float64)),
            r"test_plain.npy holds float64 \(\d+, 512, 2, 2\), expected float",
        ),
        (lambda folder: link_in_place(folder / "test_plain.npy"), "test_plain.npy is not a regular file"),
        (lambda folder: (folder / "store.json").write_text('{"key": {}}'), "does not record this store's key"),
        (lambda folder: (folder / "store.json").unlink(), "does not record this store's key"),
    ],
    ids=["not an array", "truncated", "extended", "another dtype", "a link", "another key", "no key"],
)
def test_a_damaged_store_is_refused_with_one_line_and_left_in_place(model, arrays, tmp_path, damage, message):
    folder = build(tmp_path, model, arrays).folder
    damage(folder)
    with pytest.raises(CifarBenchError, match=message) as error:
        build(tmp_path, model, arrays)
    assert "\n" not in str(error.value) and "delete that folder" in str(error.value)
    assert folder.is_dir()


@pytest.mark.parametrize("planted", ["{digest}.partial", "{digest}"])
def test_a_link_planted_as_a_store_or_its_build_is_never_written_through(model, arrays, tmp_path, planted):
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "stores"
    elsewhere.mkdir()
    root.mkdir()
    model.hparams.store_dtype, model.hparams.store_views = "float32", 2
    digest = store_key(model, arrays, "32-true").digest
    (root / planted.format(digest=digest)).symlink_to(elsewhere)
    with pytest.raises(CifarBenchError, match="is a link"):
        build(root, model, arrays)
    assert list(elsewhere.iterdir()) == []


def test_the_stores_root_may_be_a_link_the_user_made(model, arrays, tmp_path):
    (tmp_path / "scratch").mkdir()
    (tmp_path / "stores").symlink_to(tmp_path / "scratch")
    store = build(tmp_path / "stores", model, arrays)
    assert store.folder.resolve().parent == tmp_path / "scratch"


def test_a_disk_too_full_for_the_store_is_one_error_line_and_leaves_no_array(model, arrays, small_disk):
    (small_disk / "filler").write_bytes(bytes(4 * 2**20 - 64 * 2**10))
    with pytest.raises(CifarBenchError, match="cannot write .*train_views.npy: No space left on device"):
        build(small_disk / "stores", model, arrays)
    assert not list((small_disk / "stores").glob("*/*.npy"))


def test_a_checkpoint_of_the_version_before_the_store_still_builds_its_model():
    """Lightning passes a loaded checkpoint's hyperparameters back: the retired in-run cache's are ignored."""
    with torch.device("meta"):
        model = VGG16Classifier(trainable_layers=2, weights="none", cache_features=True, cache_views=2)
    assert "cache_features" not in model.hparams and model.hparams.feature_store is None


def test_a_store_needs_conv5_1_frozen():
    with (
        pytest.raises(CifarBenchError, match=r"trainable_layers=6 trains.*use trainable_layers <= 5"),
        torch.device("meta"),
    ):
        VGG16Classifier(trainable_layers=6, weights="none", feature_store="store")


# --- through the command line ---------------------------------------------------------------------------


@pytest.mark.slow
def test_fits_build_the_store_once_and_share_it_across_models_and_seeds(tiny_binary_data, tmp_path, monkeypatch):
    store, weights, builds = tmp_path / "store", tmp_path / "conv_weights.pth", []
    # A build that takes 3 s more: longer than the tiny training itself, so the time records below tell it apart.
    monkeypatch.setattr(
        store_module, "_build", lambda *args, build=store_module._build: builds.append((build(*args), time.sleep(3)))
    )
    with torch.device("meta"):
        net = VGG16(fold_fc6=True)
    torch.save(with_random_weights(net.features).state_dict(prefix="features."), weights)
    for model, seed in (("vgg16_last3", 0), ("vgg16_last5", 1)):
        run_lightning_cli(
            cli_args(
                "fit", model, tiny_binary_data, tmp_path / "logs",
                "--model.weights", str(weights), "--model.feature_store", str(store), "--model.store_views", "2",
                "--seed_everything", str(seed), "--trainer.max_epochs", "1",
                "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
            )
        )  # fmt: skip
    assert len(builds) == 1
    (folder,) = [p for p in store.iterdir() if p.is_dir()]
    assert np.load(folder / "train_views.npy", mmap_mode="r").shape == (2, 200, 512, 2, 2)
    # Each run's environment.json says how much of its time went to the store: the build, within the first's.
    built, opened = (json.loads(next((tmp_path / "logs" / model).glob("*/environment.json")).read_text())["sessions"]
                     for model in ("vgg16_last3", "vgg16_last5"))  # fmt: skip
    build_s = json.loads((folder / "store.json").read_text())["build_s"]
    assert built[0]["feature_store_s"] >= build_s + 3 and built[0]["wall_s"] > built[0]["feature_store_s"]
    assert 0 <= opened[0]["feature_store_s"] < opened[0]["wall_s"]


# --- planted content ------------------------------------------------------------------------------------


@pytest.mark.parametrize("poison", [np.nan, 0.5])
def test_a_store_with_its_key_but_other_content_is_refused(model, arrays, tmp_path, poison):
    """The key comes from public inputs: a store planted under its name, with a store.json recording it but
    other features (or NaN), was trained on. Its content must carry the tags of a build of this user."""
    folder = build(tmp_path, model, arrays).folder
    poisoned = np.lib.format.open_memmap(folder / "train_views.npy", mode="r+")
    poisoned[1, 3] = poison
    poisoned.flush()
    with pytest.raises(CifarBenchError, match=r"train_views:\d+ is not what a build of this user wrote"):
        build(tmp_path, model, arrays)


def test_a_planted_partial_build_that_says_it_is_done_is_computed_not_promoted(model, arrays, tmp_path):
    reference = build(tmp_path / "reference", model, arrays)
    partial = tmp_path / "stores" / f"{reference.folder.name}.partial"
    partial.mkdir(parents=True)
    for name in ("train_views", "train_plain", "test_plain"):
        np.save(partial / f"{name}.npy", np.zeros_like(getattr(reference, name)))
    (partial / "progress.json").write_text(
        json.dumps(
            {
                "digest": reference.folder.name,
                "done": {"train_views": 24, "train_plain": 12, "test_plain": 4},
                "tags": {f"train_views:{start}": "0" * 32 for start in (0, 12)},
            }
        )  # fmt: skip
    )
    calls: list = []
    store = build(tmp_path / "stores", model, arrays, encode=encoder(model, calls))
    assert len(calls) == 4
    for name in ("train_views", "train_plain", "test_plain"):
        assert np.array_equal(getattr(store, name), getattr(reference, name))


def test_a_build_held_by_a_stopped_process_is_waited_for_saying_so_then_given_up_in_one_line(
    model, arrays, tmp_path, monkeypatch
):
    monkeypatch.setattr(store_module, "BUILD_WAIT_S", 0.2)
    model.hparams.store_dtype, model.hparams.store_views = "float32", 2
    digest = store_key(model, arrays, "32-true").digest
    tmp_path.joinpath("stores").mkdir()
    held, said = FileLock(str(tmp_path / "stores" / f"{digest}.lock")), []
    held.acquire()  # another open file description: as another process's flock
    try:
        inputs = StoreInputs(arrays.train_images, arrays.test_images, model.transform_profile)
        with pytest.raises(CifarBenchError, match="was still being built by another process after") as error:
            open_or_build(tmp_path / "stores", store_key(model, arrays, "32-true"), inputs, encoder(model),
                          (512, 2, 2), show_progress=False, report=said.append)  # fmt: skip
    finally:
        held.release()
    assert "\n" not in str(error.value)
    assert said and said[0].startswith("Waiting for") and f"{digest}.lock" in said[0]


@pytest.mark.parametrize("plant", ["a file as the build folder", "a folder as an array file", "absurd views"])
def test_a_build_that_cannot_make_its_files_is_one_error_line(model, arrays, tmp_path, plant):
    model.hparams.store_dtype, model.hparams.store_views = "float32", 10**12 if plant == "absurd views" else 2
    partial = tmp_path / f"{store_key(model, arrays, '32-true').digest}.partial"
    if plant == "a file as the build folder":
        partial.write_text("")
    elif plant == "a folder as an array file":
        (partial / "train_views.npy").mkdir(parents=True)
    inputs = StoreInputs(arrays.train_images, arrays.test_images, model.transform_profile)
    with pytest.raises(CifarBenchError, match="cannot build feature store") as error:
        open_or_build(tmp_path, store_key(model, arrays, "32-true"), inputs, encoder(model), (512, 2, 2),
                      show_progress=False)  # fmt: skip
    assert "\n" not in str(error.value)
