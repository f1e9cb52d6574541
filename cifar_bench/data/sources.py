"""Find CIFAR-10 wherever a user has it, and read the official formats into uint8 tensors.

Three sources, tried in order: an extracted official copy (python or binary version), an official
archive in the data folder (any tar compression), torchvision's download. An archive is unpacked
by :mod:`cifar_bench.data.archives`, and its batches are read in full before the folder is moved into
place, so a damaged archive leaves nothing behind. Python-version batches are pickles, read by
:mod:`cifar_bench.data.pickles` without letting the file build any object.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cifar_bench.data.archives import one_line, unpack_atomically
from cifar_bench.data.pickles import load_batch_pickle, short_repr
from cifar_bench.errors import CifarBenchError
from cifar_bench.io import read_small_bytes, user_path

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SHAPE = (3, 32, 32)
IMAGE_BYTES = 3 * 32 * 32
TRAIN_BATCHES = 5

PYTHON_FOLDER = "cifar-10-batches-py"
BINARY_FOLDER = "cifar-10-batches-bin"
PYTHON_FILES = tuple(f"data_batch_{i}" for i in range(1, TRAIN_BATCHES + 1)) + ("test_batch",)
BINARY_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, TRAIN_BATCHES + 1)) + ("test_batch.bin",)
REQUIRED_FILES = {PYTHON_FOLDER: PYTHON_FILES, BINARY_FOLDER: BINARY_FILES}
ARCHIVE_NAME = re.compile(r"^cifar-10-(python|binary)\.(tar(\.[a-z0-9]+)?|tgz)$")

HOW_TO_PROVIDE = (
    "provide CIFAR-10 in one of three ways: put an extracted official copy "
    f"({PYTHON_FOLDER}/ or {BINARY_FOLDER}/) in it, put an official archive "
    "(cifar-10-python.tar.gz or cifar-10-binary.tar.gz, any tar compression; a symlink is fine) in it, "
    "or let it download on a machine with internet (the default; --data.download true for training, "
    "--download for analyze)"
)


@dataclass(frozen=True)
class CifarArrays:
    """The whole dataset in memory: images are uint8 (N, 3, 32, 32), labels int64 (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    train_batch_sizes: tuple[int, ...]
    class_names: tuple[str, ...]
    folder: Path


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CifarBenchError(f"cannot read {path} ({one_line(error)})")
    except MemoryError:
        raise CifarBenchError(f"{path} does not fit in memory: it is not an official batch, replace it") from None


def _checked(path: Path, images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if len(images) == 0 or len(images) != len(labels):
        raise CifarBenchError(
            f"{path} holds {len(images)} images but {len(labels)} labels: replace it with an official copy"
        )
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise CifarBenchError(
            f"{path} has a label out of range 0..{NUM_CLASSES - 1} (found {int(labels.min())}..{int(labels.max())}): "
            "the file is corrupt, replace it with an official copy"
        )
    tensor = torch.from_numpy(np.array(images, order="C")).view(-1, *IMAGE_SHAPE)  # a writable copy
    return tensor, torch.from_numpy(labels.astype(np.int64))


def _python_labels(path: Path, labels: object) -> np.ndarray:
    """Labels as official batches hold them (a list of ints), or as a 1-D integer numpy array."""
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        return labels.astype(np.int64)
    if isinstance(labels, list) and all(type(label) is int for label in labels):
        # Clamped so that any int converts; one out of range stays out of range for the check.
        return np.array([min(max(label, -1), NUM_CLASSES) for label in labels], dtype=np.int64)
    raise CifarBenchError(f"{path} has no 'labels' list of integers: replace it with an official copy")


def read_python_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch of the python version: dict with ``data`` (N, 3072) uint8 and ``labels``."""
    content = load_batch_pickle(path, _read_bytes(path))
    data = content.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        shape = data.shape if isinstance(data, np.ndarray) else None
        raise CifarBenchError(
            f"{path} has no uint8 'data' array of shape (N, {IMAGE_BYTES}) (found {shape}): replace it"
        )
    return _checked(path, data, _python_labels(path, content.get("labels")))


def read_binary_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of the binary version: records of 1 label byte then 3072 pixel bytes (R, G, B planes)."""
    raw = np.frombuffer(_read_bytes(path), dtype=np.uint8)
    record = IMAGE_BYTES + 1
    if raw.size == 0 or raw.size % record:
        raise CifarBenchError(
            f"{path} is truncated or corrupt: {raw.size} bytes is not a whole number of {record}-byte records; "
            "replace it with an official copy"
        )
    records = raw.reshape(-1, record)
    return _checked(path, records[:, 1:], records[:, 0].astype(np.int64))


def _label_name(value: object) -> str | None:
    """A class name as text, or None when it is not printable text (escape sequences, control characters)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) and value and value.isprintable() else None


# batches.meta.txt: ten names of a few letters (61 bytes in the official archive).
MAX_META_BYTES = 64 * 2**10


def _class_names(folder: Path) -> tuple[str, ...]:
    """The names in the meta file, which reports and plots print: exactly ten, each printable text."""
    text_meta, pickled_meta = folder / "batches.meta.txt", folder / "batches.meta"
    if text_meta.is_file():
        meta = text_meta
        try:
            content = read_small_bytes(text_meta, MAX_META_BYTES).decode("utf-8")
            names = [line.strip() for line in content.splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as error:
            raise CifarBenchError(f"cannot read class names from {text_meta} ({one_line(error)}): replace it")
    elif pickled_meta.is_file():
        meta = pickled_meta
        names = load_batch_pickle(pickled_meta, _read_bytes(pickled_meta)).get("label_names")
        if not isinstance(names, list):
            raise CifarBenchError(f"{pickled_meta} has no 'label_names' list: replace the meta file")
    else:
        return CLASS_NAMES
    if len(names) != NUM_CLASSES:
        raise CifarBenchError(
            f"class names in {folder} list {len(names)} classes, not {NUM_CLASSES}: replace the meta file"
        )
    readable = [_label_name(name) for name in names]
    if None in readable:
        found = short_repr(names[readable.index(None)])
        raise CifarBenchError(f"label names must be printable text, but {meta} holds {found}: replace the meta file")
    return tuple(readable)


def read_folder(folder: Path, test: bool = True) -> CifarArrays:
    """Read an extracted official folder; every batch must hold the same number of records.

    ``test`` False leaves the test batch unread (a sweep's trials): its images and labels are then empty."""
    reader = read_python_batch if folder.name == PYTHON_FOLDER else read_binary_batch
    names = REQUIRED_FILES[folder.name][: None if test else TRAIN_BATCHES]
    batches = [reader(folder / name) for name in names]
    if not test:
        batches.append((torch.empty((0, *IMAGE_SHAPE), dtype=torch.uint8), torch.empty(0, dtype=torch.long)))
    counts = [len(labels) for _, labels in batches[: len(names)]]
    if len(set(counts)) != 1:
        listing = ", ".join(f"{name}: {n}" for name, n in zip(names, counts))
        raise CifarBenchError(f"batches in {folder} differ in record count ({listing}): one is truncated, replace it")
    train = batches[:TRAIN_BATCHES]
    return CifarArrays(
        train_images=torch.cat([images for images, _ in train]),
        train_labels=torch.cat([labels for _, labels in train]),
        test_images=batches[-1][0],
        test_labels=batches[-1][1],
        train_batch_sizes=tuple(counts[:TRAIN_BATCHES]),
        class_names=_class_names(folder),
        folder=folder,
    )


def _missing_files(folder: Path) -> list[str]:
    return [name for name in REQUIRED_FILES[folder.name] if not (folder / name).is_file()]


def _official_folder(archive: Path, scratch: Path) -> Path:
    """The one official folder ``archive`` unpacked into ``scratch``, complete and with every batch readable."""
    extracted = [scratch / name for name in REQUIRED_FILES if (scratch / name).is_dir()]
    if len(extracted) != 1:
        raise CifarBenchError(
            f"{archive} holds {len(extracted)} of the folders {PYTHON_FOLDER}/ and {BINARY_FOLDER}/, not one: "
            "it is not an official CIFAR-10 archive"
        )
    missing = _missing_files(extracted[0])
    if missing:
        raise CifarBenchError(
            f"{archive} lacks {', '.join(missing)}: it is incomplete, fetch the official archive again"
        )
    try:
        read_folder(extracted[0])
    except CifarBenchError as error:
        inside = str(error).replace(f"{scratch}{os.sep}", "")
        raise CifarBenchError(
            f"{archive} is damaged and was not unpacked: delete it and fetch the official archive again ({inside})"
        ) from None
    return extracted[0]


def unpack_archive(archive: Path, data_dir: Path) -> Path:
    """Unpack an official archive into ``data_dir`` and return the extracted folder, read in full first."""
    return unpack_atomically(archive, data_dir, lambda scratch: _official_folder(archive, scratch))


def _find_archives(data_dir: Path) -> list[Path]:
    return sorted(path for path in data_dir.iterdir() if ARCHIVE_NAME.match(path.name) and path.is_file())


def _download(data_dir: Path) -> Path:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_url

    try:
        download_url(CIFAR10.url, str(data_dir), CIFAR10.filename, CIFAR10.tgz_md5)
    except (OSError, RuntimeError, ValueError) as error:
        raise CifarBenchError(
            f"no CIFAR-10 copy or archive in {data_dir.resolve()} and the download failed ({one_line(error)}); {HOW_TO_PROVIDE}"
        )
    return unpack_archive(data_dir / CIFAR10.filename, data_dir)


def locate(data_dir: str | Path, download: bool = True, unpack: bool = True) -> Path:
    """Return an extracted official folder, unpacking an archive (unless ``unpack`` is off) or
    downloading only when needed.

    Runs once per machine before training (``prepare_data``); reading is :func:`read_folder`.
    """
    data_dir = user_path(data_dir)
    try:
        data_dir.stat()
    except FileNotFoundError:
        pass  # created below when downloading
    except OSError as error:  # a symlink loop, or a folder above it that cannot be searched
        raise CifarBenchError(
            f"cannot use data_dir {data_dir} ({one_line(error)}): point it at a real folder you can read"
        )
    if data_dir.exists() and not data_dir.is_dir():
        raise CifarBenchError(f"data_dir {data_dir} is a file, not a folder: pass the folder that holds CIFAR-10")
    if data_dir.name in REQUIRED_FILES:
        candidates = [data_dir]
    else:
        candidates = [data_dir / name for name in REQUIRED_FILES]
    for folder in candidates:
        if folder.is_dir():
            missing = _missing_files(folder)
            if not missing:
                return folder
            raise CifarBenchError(
                f"{folder} is incomplete (missing {', '.join(missing)}): complete it, or remove it so that an archive "
                "or the download can take its place"
            )
    if data_dir.is_dir() and (unpack or download):
        archives = _find_archives(data_dir)
        if archives:
            return unpack_archive(archives[0], data_dir)
    if download:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CifarBenchError(
                f"cannot create data_dir {data_dir} ({one_line(error)}): pass a folder you can write to"
            )
        return _download(data_dir)
    raise CifarBenchError(f"no CIFAR-10 copy or archive in {data_dir.resolve()} and download is off; {HOW_TO_PROVIDE}")


def load_cifar10(data_dir: str | Path, download: bool = True, unpack: bool = True) -> CifarArrays:
    """Locate (unpacking or downloading if needed and allowed) and read the whole dataset."""
    return read_folder(locate(data_dir, download, unpack))
