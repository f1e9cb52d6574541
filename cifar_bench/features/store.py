"""VGG16's frozen convolutions, computed once for the whole training set in K augmented views, kept on disk.

VGG16 with its last 2, 3 or 5 weight layers trained never changes conv1_1 ... conv5_1, 89% of its forward
at 32x32. A store holds their output (512x2x2 per image) for every one of the training images in ``views``
augmented views (the study's random flip and rotation, each view drawn once from a seed), plus the plain
view of the training and test images for validation. One store serves all three models and every run seed
(a run's validation split is a subset of the training images).

A store is named by the digest of everything that determines its content (``StoreKey``): a change of any of
it makes another store, so a stale one is never read. It is built in ``<digest>.partial/`` under a file lock,
chunk by chunk with its progress recorded, and renamed into place only when complete: a killed build leaves
no folder that looks complete, and the next build continues where it stopped. Opening checks what the
folder says of itself (its key, each array's dtype and shape, each file's size) against what is expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cifar_bench.data.augment import TransformProfile, augmentation_draws, augmented_view, normalize
from cifar_bench.errors import CifarBenchError
from cifar_bench.io import atomic_file, read_json_object, unwritable

# Bumped whenever the files' layout or meaning changes.
STORE_FORMAT = 1
# Images encoded per forward call and per recorded step of a build's progress.
CHUNK_IMAGES = 250
STORE_DTYPES = {"float16": np.float16, "float32": np.float32}
ARRAY_NAMES = ("train_views", "train_plain", "test_plain")


@dataclass(frozen=True)
class StoreKey:
    """Everything a store's content depends on; its digest names the store's folder."""

    prefix_sha256: str  # the frozen layers' weights up to the tap
    train_sha256: str  # the training images it encodes
    test_sha256: str  # the test images
    tap: str
    views: int
    view_seed: int
    augmentation: str  # the augmentation's version and settings, and the normalisation
    precision: str  # what the frozen layers computed in
    dtype: str  # what the features are stored as
    format: int = STORE_FORMAT

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]


def tensors_sha256(tensors: Iterable[torch.Tensor]) -> str:
    """A digest of tensors' shapes, dtypes and values (memory layout aside: channels-last weights hash the same)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = np.ascontiguousarray(tensor.detach().cpu().contiguous().numpy())
        digest.update(f"{tuple(array.shape)}{array.dtype}".encode())
        digest.update(array.data)
    return digest.hexdigest()


def view_draws(view: int, count: int, view_seed: int, profile: TransformProfile) -> tuple[torch.Tensor, torch.Tensor]:
    """(flip, degrees) of every training image in augmented view ``view``: fixed by (view_seed, view) alone."""
    generator = torch.Generator().manual_seed(view_seed * 1_000_003 + view)
    return augmentation_draws(count, profile.max_rotation_degrees, generator)


@dataclass
class StoreInputs:
    """What a store encodes: uint8 (N, 3, 32, 32) training and test images, and the network's input profile."""

    train_images: torch.Tensor
    test_images: torch.Tensor
    profile: TransformProfile


class FeatureStore:
    """An opened store: read-only memory maps of ``train_views`` (views, N, ...), ``train_plain`` (N, ...)
    and ``test_plain`` (N_test, ...)."""

    def __init__(self, folder: Path, arrays: dict[str, np.ndarray], build_s: float | None) -> None:
        self.folder, self.build_s = folder, build_s
        self.train_views, self.train_plain, self.test_plain = (arrays[name] for name in ARRAY_NAMES)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.train_views, self.train_plain, self.test_plain))


def array_shapes(key: StoreKey, train_count: int, test_count: int, feature_shape: tuple[int, ...]) -> dict:
    """Each array's shape, by name (``ARRAY_NAMES``)."""
    return {
        "train_views": (key.views, train_count, *feature_shape),
        "train_plain": (train_count, *feature_shape),
        "test_plain": (test_count, *feature_shape),
    }


def _refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise CifarBenchError(f"{path} is a link: refusing to use it as a feature store; remove it and run again")


def _read_json(path: Path) -> dict | None:
    """A store's record (store.json, progress.json), None when missing or not a readable JSON object."""
    try:
        return read_json_object(path, "")
    except CifarBenchError:
        return None


def _write_json(path: Path, content) -> None:
    """Through a new file renamed into place: a kill leaves the old content or the new, never half."""
    with atomic_file(path, durable=True) as handle:
        handle.write(json.dumps(content).encode())


def _new_array(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """A new .npy memory map whose disk space is reserved now: a map written past a full disk would kill
    the process with SIGBUS, where a refused reservation is one error line."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as error:
            del array
            path.unlink(missing_ok=True)
            raise unwritable(path, error) from None
    return array


def _mapped_array(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.memmap:
    """The .npy file at ``path`` mapped read-only by numpy (nothing unpickled, header at most 10,000 bytes),
    if it is a regular file holding exactly a C-order array of this dtype and shape; else ValueError saying
    why not."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        raise ValueError(f"{path.name} is missing")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path.name} is not a regular file")
    try:
        array = np.lib.format.open_memmap(path, mode="r")
    except (OSError, ValueError) as error:  # a header numpy refuses, or less data than it declares
        raise ValueError(f"{path.name} is not an array file ({error})")
    if array.shape != tuple(shape) or array.dtype != dtype or not array.flags.c_contiguous:
        raise ValueError(f"{path.name} holds {array.dtype} {array.shape}, expected {np.dtype(dtype)} {tuple(shape)}")
    if info.st_size != array.offset + array.nbytes:
        raise ValueError(f"{path.name} has {info.st_size:,} bytes, expected {array.offset + array.nbytes:,}")
    return array


def _is_complete(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> bool:
    """Whether a stopped build's array file can be continued: checked read-only first, since mapping a short
    file for writing would extend it."""
    try:
        _mapped_array(path, dtype, shape)
    except ValueError:
        return False
    return True


def open_store(folder: Path, key: StoreKey, shapes: dict) -> FeatureStore:
    """The complete store in ``folder``, checked against ``key`` and the expected shapes; one error line if not."""
    _refuse_link(folder)
    recorded = _read_json(folder / "store.json")
    try:
        if not isinstance(recorded, dict) or recorded.get("key") != asdict(key) or recorded.get("digest") != key.digest:
            raise ValueError("its store.json does not record this store's key")
        arrays = {
            name: _mapped_array(folder / f"{name}.npy", STORE_DTYPES[key.dtype], shape)
            for name, shape in shapes.items()
        }
    except ValueError as problem:
        raise CifarBenchError(f"feature store {folder} is damaged ({problem}): delete that folder to rebuild it")
    build_s = recorded.get("build_s")
    return FeatureStore(folder, arrays, build_s if isinstance(build_s, float) else None)


def _chunks(key: StoreKey, inputs: StoreInputs) -> Iterable[tuple[str, int, int, Callable[[], torch.Tensor]]]:
    """(array, start, stop, network input) of every chunk of a build, in order; positions are flat within
    the array (view-major for ``train_views``)."""
    profile = inputs.profile
    train_count = len(inputs.train_images)
    for view in range(key.views):
        flip, degrees = view_draws(view, train_count, key.view_seed, profile)
        for start in range(0, train_count, CHUNK_IMAGES):
            stop = min(start + CHUNK_IMAGES, train_count)
            yield (
                "train_views",
                view * train_count + start,
                view * train_count + stop,
                lambda start=start, stop=stop, flip=flip, degrees=degrees: augmented_view(
                    inputs.train_images[start:stop], profile, flip[start:stop], degrees[start:stop]
                ),
            )
    for name, images in (("train_plain", inputs.train_images), ("test_plain", inputs.test_images)):
        for start in range(0, len(images), CHUNK_IMAGES):
            stop = min(start + CHUNK_IMAGES, len(images))
            yield (
                name,
                start,
                stop,
                lambda i=images[start:stop]: normalize(i.float().div(255), profile.mean, profile.std),
            )


def _build(partial: Path, key: StoreKey, inputs: StoreInputs, encode, shapes: dict, show_progress: bool) -> None:
    """Fill ``partial`` chunk by chunk, continuing a build that was stopped, and record the store's key last."""
    partial.mkdir(exist_ok=True)
    _refuse_link(partial)
    dtype = STORE_DTYPES[key.dtype]
    progress_file = partial / "progress.json"
    recorded = _read_json(progress_file)
    continuing = isinstance(recorded, dict) and recorded.get("digest") == key.digest
    done = recorded.get("done", {}) if continuing else {}
    # Seconds spent by the sessions before this one, so a continued build records its whole time.
    earlier = recorded.get("seconds", 0.0) if continuing and isinstance(recorded.get("seconds"), float) else 0.0
    started = time.perf_counter()
    arrays = {}
    for name, shape in shapes.items():
        path = partial / f"{name}.npy"
        _refuse_link(path)
        if isinstance(done.get(name), int) and _is_complete(path, dtype, shape):
            arrays[name] = np.lib.format.open_memmap(path, mode="r+")
        else:
            path.unlink(missing_ok=True)
            arrays[name] = _new_array(path, dtype, shape)
            done[name] = 0
    flat = {name: array.reshape(-1, *array.shape[-3:]) for name, array in arrays.items()}
    total = sum(int(np.prod(shape[:-3])) for shape in shapes.values())
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} images"))
    with Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), disable=not show_progress) as bar:
        task = bar.add_task(f"VGG16 feature store ({key.views} views)", total=total)
        bar.update(task, completed=sum(done.values()))
        for name, start, stop, network_input in _chunks(key, inputs):
            if stop <= done[name]:
                continue
            features = encode(network_input()).float().cpu().numpy().astype(dtype)
            if not np.isfinite(features).all():
                raise CifarBenchError(f"the frozen layers' output does not fit {key.dtype}: use store_dtype float32")
            flat[name][start:stop] = features
            arrays[name].flush()
            done[name] = stop
            seconds = earlier + time.perf_counter() - started
            _write_json(progress_file, {"digest": key.digest, "done": done, "seconds": seconds})
            bar.update(task, advance=stop - start)
    del flat, arrays
    record = {"key": asdict(key), "digest": key.digest, "shapes": shapes}
    _write_json(partial / "store.json", record | {"build_s": earlier + time.perf_counter() - started})
    progress_file.unlink()


def open_or_build(
    root: Path,
    key: StoreKey,
    inputs: StoreInputs,
    encode: Callable[[torch.Tensor], torch.Tensor],
    feature_shape: tuple[int, ...],
    show_progress: bool = True,
    report: Callable[[str], None] = print,
) -> FeatureStore:
    """The store for ``key`` under ``root``: opened if it is there, else built (or its stopped build continued).

    A lock makes concurrent runs (or DDP ranks) wait for one build instead of each building its own. The
    root is the user's to choose (a link to a scratch disk is fine); a link planted below it is refused."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(root / f"{key.digest}.lock")
        lock.acquire()
    except OSError as error:  # a read-only or full disk, or a link planted as the lock file
        raise CifarBenchError(f"cannot use {root} for VGG16 feature stores ({error}): choose another feature_store")
    shapes = array_shapes(key, len(inputs.train_images), len(inputs.test_images), feature_shape)
    final, partial = root / key.digest, root / f"{key.digest}.partial"
    try:
        if not final.exists() and not final.is_symlink():
            _build(partial, key, inputs, encode, shapes, show_progress)
            os.rename(partial, final)
            store = open_store(final, key, shapes)
            report(f"Built the VGG16 feature store in {store.build_s:.0f} s: {store.nbytes / 2**30:.2f} GiB in {final}")
            return store
    finally:
        lock.release()
    return open_store(final, key, shapes)
