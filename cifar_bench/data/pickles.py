"""Read the pickles of CIFAR-10's python version without letting the file build anything.

numpy trusts the state a pickle hands to ``dtype`` and ``ndarray``: flags, fields and offsets from a
crafted file make it treat raw bytes as object pointers or read far outside the array, which ends in a
segfault or worse. So no numpy object is ever built from file-supplied state: the few globals that
official batches name resolve to stand-ins that accept only the plain states those files hold
(C-order arrays of fixed-size numbers), and the arrays are built here from the raw bytes with a dtype
taken from a fixed table. Python 2 pickles (the official files) and those of any numpy version load.
"""

from __future__ import annotations

import io
import math
import pickle
import reprlib
from pathlib import Path

import numpy as np

from cifar_bench.errors import CifarBenchError

# The dtypes an array in a batch may have: fixed-size numbers. Official batches use only "u1".
_PLAIN_CODES = ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8")
_BYTE_ORDERS = ("|", "<", ">", "=")
# A plain dtype's pickled state after the byte order: no subarray, names, fields; sizes and flags unset.
_PLAIN_DTYPE_STATE_TAIL = (None, None, None, -1, -1, 0)


def short_repr(value: object) -> str:
    """A value from a file, for an error message: short, escaped onto one line, and never failing."""
    return reprlib.repr(value) if isinstance(value, (str, bytes)) else f"a value of type {type(value).__name__}"


def _text(value: object) -> object:
    """Python 2 strings arrive as bytes (``encoding='bytes'``); numpy's own names are ASCII."""
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


class _PlainDtype:
    """Stands in for ``numpy.dtype(code, align, copy)`` and the state pickled after it."""

    def __init__(self, code: object, align: object = False, copy: object = True) -> None:
        code = _text(code)
        if code not in _PLAIN_CODES or align not in (False, 0):
            raise pickle.UnpicklingError(
                f"refusing numpy dtype {short_repr(code)}: official batches hold plain numbers"
            )
        self.dtype = np.dtype(code)

    def __setstate__(self, state: object) -> None:
        plain = isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[2:] == _PLAIN_DTYPE_STATE_TAIL
        if not plain or _text(state[1]) not in _BYTE_ORDERS:
            raise pickle.UnpicklingError(
                "refusing a numpy dtype with fields, offsets or flags: official batches have none"
            )
        self.dtype = self.dtype.newbyteorder(_text(state[1]))


def _built(raw: object, dtype: object, shape: object) -> np.ndarray:
    """A 1-D or 2-D array of a plain dtype viewing its raw bytes, once shape, dtype and size agree."""
    if not isinstance(dtype, _PlainDtype):
        raise pickle.UnpicklingError("refusing an array whose dtype is not a plain numpy dtype")
    if not isinstance(raw, (bytes, bytearray)):
        raise pickle.UnpicklingError("refusing an array whose data is not raw bytes")
    if not (isinstance(shape, tuple) and len(shape) in (1, 2) and all(type(n) is int and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(
            "refusing an array shape other than 1-D or 2-D sizes: official batches hold no other"
        )
    declared = math.prod(shape) * dtype.dtype.itemsize
    if declared != len(raw):
        raise pickle.UnpicklingError(f"an array declares shape {shape} ({declared} bytes) but holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype.dtype).reshape(shape)


class _PendingArray:
    """What ``_reconstruct`` returns: an empty array that the pickled state (BUILD) then fills."""

    array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        if self.array is not None or not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise pickle.UnpicklingError("refusing a numpy array state of an unknown layout")
        _, shape, dtype, fortran_order, raw = state
        if fortran_order not in (False, 0):
            raise pickle.UnpicklingError("refusing a Fortran-order array: official batches are C order")
        self.array = _built(raw, dtype, shape)


def _refuse_ndarray_call(*arguments: object) -> None:
    raise pickle.UnpicklingError("refusing to call numpy.ndarray")


class _Global:
    """What the unpickler hands out for a global that official batches name: it runs the stand-in
    when called, and refuses the BUILD opcode, which would otherwise set attributes on it."""

    __slots__ = ("name", "function")

    def __init__(self, name: str, function) -> None:
        self.name, self.function = name, function

    def __call__(self, *arguments: object) -> object:
        return self.function(*arguments)

    def __setstate__(self, state: object) -> None:
        raise pickle.UnpicklingError(f"refusing to modify {self.name}")


_NDARRAY = _Global("numpy.ndarray", _refuse_ndarray_call)


def _reconstruct(array_class: object, shape: object, typecode: object) -> _PendingArray:
    """Stands in for numpy's ``_reconstruct(ndarray, (0,), b'b')``, the first half of an array."""
    if array_class is not _NDARRAY or shape != (0,) or _text(typecode) != "b":
        raise pickle.UnpicklingError("refusing a numpy array reconstruction other than numpy's own")
    return _PendingArray()


def _frombuffer(raw: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """Stands in for numpy's ``_frombuffer``, which pickle protocol 5 uses for arrays."""
    if _text(order) != "C":
        raise pickle.UnpicklingError("refusing a Fortran-order array: official batches are C order")
    return _built(raw, dtype, shape)


def _latin1_bytes(text: object, encoding: object = "utf-8") -> bytes:
    """Stands in for ``_codecs.encode``: Python 3 writes bytes into protocol-2 pickles as latin-1 text."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing codec {short_repr(encoding)}: official batches use none but latin1")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise pickle.UnpicklingError("refusing latin1 bytes that are not latin-1 text") from None


_RECONSTRUCT = _Global("numpy's _reconstruct", _reconstruct)
_FROMBUFFER = _Global("numpy's _frombuffer", _frombuffer)
_STAND_INS = {  # numpy 2 moved numpy.core to numpy._core; files name either
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Global("numpy.dtype", _PlainDtype),
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): _Global("_codecs.encode", _latin1_bytes),
}


class _BatchUnpickler(pickle.Unpickler):
    """Resolves the globals that official batches name to the stand-ins, and refuses every other."""

    def find_class(self, module: str, name: str) -> object:
        stand_in = _STAND_INS.get((module, name))
        if stand_in is None:
            raise pickle.UnpicklingError(f"refusing to load {short_repr(f'{module}.{name}')}")
        return stand_in


def _resolved(path: Path, value: object) -> object:
    if isinstance(value, _PendingArray):
        if value.array is None:
            raise CifarBenchError(f"{path} holds a numpy array without its data: replace it with an official copy")
        return value.array
    return value


def _key(path: Path, key: object) -> object:
    if not isinstance(key, bytes):
        return key
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise CifarBenchError(
            f"{path} has a key that is not UTF-8 text ({short_repr(key)}): replace it with an official copy"
        ) from None


def load_batch_pickle(path: Path, content: bytes) -> dict:
    """The dictionary pickled in ``content`` (read from ``path``), with str keys and numpy arrays."""
    try:
        loaded = _BatchUnpickler(io.BytesIO(content), encoding="bytes").load()
    except pickle.UnpicklingError as error:
        raise CifarBenchError(
            f"{path} is not a CIFAR-10 python batch ({error}): replace it with an official copy"
        ) from None
    except MemoryError:
        raise CifarBenchError(f"{path} does not fit in memory: it is not an official batch, replace it") from None
    except Exception as error:  # only the stand-ins run, so anything else raised means damaged data
        raise CifarBenchError(
            f"{path} is truncated or corrupt ({type(error).__name__}): replace it with an official copy"
        ) from None
    if not isinstance(loaded, dict):
        raise CifarBenchError(f"{path} is not a CIFAR-10 python batch (no dictionary inside): replace it")
    return {_key(path, key): _resolved(path, value) for key, value in loaded.items()}
