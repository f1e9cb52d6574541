"""Argument ranges stated once, as jsonargparse types in the constructors' signatures.

The command line's parser refuses a value outside its type's range (and ``--help`` names the type);
``refuse_out_of_range`` refuses the same values, as one clear ``CifarBenchError``, when a constructor is
called from Python, where annotations are not enforced.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping

from jsonargparse.typing import restricted_number_type

from cifar_bench.errors import CifarBenchError

# The seeds numpy accepts, and so Lightning's seed_everything: a negative or larger one was a traceback
# after the run folder was made (fit), or a failed run recorded for every model (study).
MAX_SEED = 2**32 - 1
Seed = restricted_number_type("Seed", int, [(">=", 0), ("<=", MAX_SEED)], docstring=f"int from 0 to {MAX_SEED}")
FloatFrom0Below1 = restricted_number_type(
    "FloatFrom0Below1", float, [(">=", 0.0), ("<", 1.0)], docstring="float restricted to be ≥0 and <1"
)


def restricted_type(annotation) -> type | None:
    """The jsonargparse number type of an annotation (also inside ``Optional``), None for any other."""
    candidates = typing.get_args(annotation) or (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, (int, float)) and candidate not in (int, float, bool):
            return candidate
    return None


def refuse_out_of_range(cls: type, arguments: Mapping[str, object]) -> None:
    """Check constructor arguments against the number types declared by ``cls`` and its bases' ``__init__``."""
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass.__module__.split(".")[0] != "cifar_bench":
            continue
        for name, annotation in typing.get_type_hints(init).items():
            kind = restricted_type(annotation)
            value = arguments.get(name)
            if kind is None or value is None:
                continue
            try:
                kind(value)
            except (ValueError, TypeError, OverflowError):  # OverflowError: an int past a float's range
                raise CifarBenchError(
                    f"{cls.__name__}: {name}={value!r:.60} is out of range ({kind.__doc__ or kind.__name__}): "
                    "pass a value in that range"
                ) from None


def refuse_bad_seed(seed: object, option: str) -> None:
    """A seed outside 0 .. ``MAX_SEED`` as one clear error (``true``/``false``, Lightning's own words, pass)."""
    if isinstance(seed, int) and not isinstance(seed, bool) and not 0 <= seed <= MAX_SEED:
        raise CifarBenchError(f"{option} {seed} is out of range: a seed is a whole number from 0 to {MAX_SEED:,}")
