"""VGG16's frozen convolutions (conv1_1 ... conv5_1, 89% of its forward at 32x32), computed once for the
training set in K augmented views and kept on disk, shared by the three VGG16 models, every seed and trial.

A store is named by the digest of everything that determines its content (``StoreKey``), built in
``<digest>.partial/`` under a lock chunk by chunk and renamed into place when complete; its content is
trusted only where each chunk carries the build's keyed tag (``io.user_secret``): a folder can be planted
under a public name. See docs/guarantees.md.
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
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cifar_bench.data.augment import TransformProfile, augmentation_draws, augmented_view, prepare_batch
from cifar_bench.errors import CifarBenchError
from cifar_bench.io import atomic_file, read_json_object, take_lock, unwritable, user_secret

# Bumped whenever the files' layout or meaning changes.
STORE_FORMAT = 2
SECRET_NAME = "feature-store.key"
# How long a fit waits for another process's build of the store it needs (641 s on a fast CPU) before giving up.
BUILD_WAIT_S = 3 * 3600
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
        tags, secret = recorded.get("tags"), user_secret(SECRET_NAME)
        for chunk, block in _blocks(arrays):
            if not isinstance(tags, dict) or tags.get(chunk) != _tag(secret, key, chunk, block):
                raise ValueError(f"its content at {chunk} is not what a build of this user wrote")
    except ValueError as problem:
        raise CifarBenchError(f"feature store {folder} is damaged ({problem}): delete that folder to rebuild it")
    build_s = recorded.get("build_s")
    return FeatureStore(folder, arrays, build_s if isinstance(build_s, float) else None)


def _blocks(arrays: dict[str, np.ndarray]) -> Iterable[tuple[str, np.ndarray]]:
    """(name, the block of the array it names) of every chunk a build computes at once, in order: ``ARRAY:START``,
    START flat within the array (view-major for ``train_views``; a chunk never crosses a view)."""
    for name, array in arrays.items():
        flat, per_view = array.reshape(-1, *array.shape[-3:]), array.shape[-4]
        for first in range(0, len(flat), max(per_view, 1)):  # no chunk of an empty array (test_plain, unread)
            for start in range(first, first + per_view, CHUNK_IMAGES):
                yield f"{name}:{start}", flat[start : min(start + CHUNK_IMAGES, first + per_view)]


def _network_input(key: StoreKey, inputs: StoreInputs, chunk: str, size: int) -> torch.Tensor:
    """The network input of chunk ``chunk`` (as ``_blocks`` names it) of ``size`` images."""
    name, start = chunk.split(":")
    profile, count = inputs.profile, len(inputs.train_images)
    if name == "train_views":
        view, start = divmod(int(start), count)
        flip, degrees = (d[start : start + size] for d in view_draws(view, count, key.view_seed, profile))
        return augmented_view(inputs.train_images[start : start + size], profile, flip, degrees)
    images = (inputs.train_images if name == "train_plain" else inputs.test_images)[int(start) : int(start) + size]
    return prepare_batch(images, profile, train=False)


def _tag(secret: bytes, key: StoreKey, chunk: str, block: np.ndarray) -> str:
    """The build's tag of a chunk's content: only a process holding this user's secret can make it."""
    digest = hashlib.blake2b(f"{key.digest}/{chunk}/".encode(), key=secret, digest_size=16)
    digest.update(np.ascontiguousarray(block).tobytes())
    return digest.hexdigest()


def _build(partial: Path, key: StoreKey, inputs: StoreInputs, encode, shapes: dict, show_progress: bool) -> None:
    """Fill ``partial`` chunk by chunk, computing each chunk that does not carry this build's tag (all of a new
    build, those left of a stopped one), and record the store's key and tags last."""
    partial.mkdir(exist_ok=True)
    _refuse_link(partial)
    dtype, secret = STORE_DTYPES[key.dtype], user_secret(SECRET_NAME)
    progress_file = partial / "progress.json"
    recorded = _read_json(progress_file)
    continuing = isinstance(recorded, dict) and recorded.get("digest") == key.digest
    tags = recorded.get("tags") if continuing and isinstance(recorded.get("tags"), dict) else {}
    # Seconds spent by the sessions before this one, so a continued build records its whole time.
    earlier = recorded.get("seconds", 0.0) if continuing and isinstance(recorded.get("seconds"), float) else 0.0
    started = time.perf_counter()
    arrays = {}
    for name, shape in shapes.items():
        path = partial / f"{name}.npy"
        _refuse_link(path)
        if _is_complete(path, dtype, shape):
            arrays[name] = np.lib.format.open_memmap(path, mode="r+")
        else:
            path.unlink(missing_ok=True)
            arrays[name] = _new_array(path, dtype, shape)
    total = sum(int(np.prod(shape[:-3])) for shape in shapes.values())
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} images"))
    with Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), disable=not show_progress) as bar:
        task = bar.add_task(f"VGG16 feature store ({key.views} views)", total=total)
        for chunk, block in _blocks(arrays):
            if tags.get(chunk) != _tag(secret, key, chunk, block):
                features = encode(_network_input(key, inputs, chunk, len(block))).float().cpu().numpy().astype(dtype)
                if not np.isfinite(features).all():
                    raise CifarBenchError(
                        f"the frozen layers' output does not fit {key.dtype}: use store_dtype float32"
                    )
                block[:] = features
                arrays[chunk.split(":")[0]].flush()
                tags[chunk] = _tag(secret, key, chunk, block)
                seconds = earlier + time.perf_counter() - started
                _write_json(progress_file, {"digest": key.digest, "tags": tags, "seconds": seconds})
            bar.update(task, advance=len(block))
    del block, arrays
    record = {"key": asdict(key), "digest": key.digest, "shapes": shapes, "tags": tags}
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
    final, partial, lock_file = root / key.digest, root / f"{key.digest}.partial", root / f"{key.digest}.lock"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a read-only or full disk
        raise CifarBenchError(f"cannot use {root} for VGG16 feature stores ({error}): choose another feature_store")
    busy = f"{final} was still being built by another process after {BUILD_WAIT_S:,} s (it holds {lock_file})"
    lock = take_lock(lock_file, BUILD_WAIT_S, busy + ": if it is stopped, end it and run again", report)
    train_count = len(inputs.train_images)
    shapes = {  # each array's, by name (ARRAY_NAMES)
        "train_views": (key.views, train_count, *feature_shape),
        "train_plain": (train_count, *feature_shape),
        "test_plain": (len(inputs.test_images), *feature_shape),
    }
    try:
        if not final.exists() and not final.is_symlink():
            try:
                _build(partial, key, inputs, encode, shapes, show_progress)
                os.rename(partial, final)
            except OSError as error:  # a file or folder in the way of the build's, arrays the system refuses
                raise CifarBenchError(f"cannot build feature store {partial} ({error}): delete it and run again")
            store = open_store(final, key, shapes)
            size = sum(array.nbytes for array in (store.train_views, store.train_plain, store.test_plain)) / 2**30
            report(f"Built the VGG16 feature store in {store.build_s:.0f} s: {size:.2f} GiB in {final}")
            return store
    finally:
        lock.release()
    return open_store(final, key, shapes)
