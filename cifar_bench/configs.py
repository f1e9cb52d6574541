"""The package's configs: base.yaml and one YAML per model, the one source of the model names.

They live in the repository's top-level ``configs/`` (where ``--config configs/cnn.yaml`` finds them)
and ship inside the package as ``cifar_bench/configs/`` (setup.cfg maps the folder there), so an
installed copy finds them with no checkout around. Plain paths, no torch: the Makefile reads the names.
"""

from __future__ import annotations

import re
from pathlib import Path

from cifar_bench.errors import CifarBenchError

_PACKAGE = Path(__file__).resolve().parent
# An installed copy (wheel, pip install .) holds them as package data; a checkout (on the path, or
# installed editable) in its top-level folder.
CONFIG_DIR = _PACKAGE / "configs" if (_PACKAGE / "configs").is_dir() else _PACKAGE.parent / "configs"
BASE_CONFIG = CONFIG_DIR / "base.yaml"
# A --config value spelled as a bare name (no folder, no suffix) names a packaged config.
_BARE_NAME = re.compile(r"[A-Za-z0-9_]+")


def model_names(config_dir: Path = CONFIG_DIR) -> list[str]:
    """Every model config beside base.yaml, by name, sorted."""
    return sorted(path.stem for path in config_dir.glob("*.yaml") if path.stem != BASE_CONFIG.stem)


def model_config(name: str) -> Path:
    """The packaged config of a model name, e.g. ``cnn``; an unknown name is refused with the list."""
    known = model_names()
    if name not in known:
        raise CifarBenchError(f"unknown model {name!r}: choose one of {', '.join(known)}, or pass a YAML file")
    return CONFIG_DIR / f"{name}.yaml"


def resolve_config_argument(value: str) -> str:
    """A ``--config`` value as given, unless it is a bare model name: then always the packaged config of that
    name, so ``--config cnn`` works from any folder and a file named ``cnn`` in the working folder never
    stands in for it (a file is named as a path: ``./cnn``, ``cnn.yaml``)."""
    return str(model_config(value)) if _BARE_NAME.fullmatch(value) else value
