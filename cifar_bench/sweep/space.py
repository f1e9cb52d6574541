"""A search space file: one entry per ``fit`` option, by its flag's name, and the range to draw it from.

    model.lr: {type: log_uniform, low: 0.001, high: 0.3}
    model.optimizer: {type: categorical, choices: [sgd, adamw]}
    trainer.max_epochs: {type: int, low: 6, high: 18}

Each entry becomes an Optuna distribution; a drawn value becomes a command-line word for the trial's fit
and a key of best.yaml. Whether fit accepts the names and the values is checked with fit's own parser
(``trial.check_fit_options``), not here.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from cifar_bench.configs import CONFIG_DIR
from cifar_bench.errors import CifarBenchError
from cifar_bench.io import read_small_text

SPACES_DIR = CONFIG_DIR / "spaces"
# type: the keys an entry of that type may hold besides ``type``
KEYS = {
    "log_uniform": {"low", "high"},
    "uniform": {"low", "high", "step"},
    "int": {"low", "high", "step", "log"},
    "categorical": {"choices"},
}
# The sections of a config whose classes are chosen by class_path: their settings sit under init_args.
CLASS_SECTIONS = ("model",)


def read_space(path: Path) -> dict[str, BaseDistribution]:
    """The distributions of a space file, each entry checked; any fault is one error naming the file and entry."""
    try:
        content = yaml.safe_load(read_small_text(path))
    except (OSError, ValueError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())
        raise CifarBenchError(f"cannot read the space file {path} ({reason}): pass --space FILE, see docs/sweep.md")
    if not isinstance(content, dict) or not content:
        raise CifarBenchError(
            f"{path} holds no options: write one per fit option, e.g. 'model.lr: {{type: log_uniform, low: 0.001, high: 0.3}}'"
        )
    return {str(name): distribution(f"{path}: {name}", entry) for name, entry in content.items()}


def distribution(where: str, entry: object) -> BaseDistribution:
    kind = entry.get("type") if isinstance(entry, dict) else None
    if kind not in KEYS:
        raise CifarBenchError(f"{where}: unknown type {kind!r}: choose one of {', '.join(KEYS)}")
    unknown = sorted(set(entry) - KEYS[kind] - {"type"})
    if unknown:
        raise CifarBenchError(
            f"{where}: a {kind} entry takes {', '.join(sorted(KEYS[kind]))}, not {', '.join(unknown)}"
        )
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise CifarBenchError(f"{where}: a categorical entry needs a non-empty list of choices")
        return CategoricalDistribution([as_choice(choice) for choice in choices])
    number = int if kind == "int" else float
    low, high = (bound(where, name, entry.get(name), number) for name in ("low", "high"))
    if low >= high:
        raise CifarBenchError(f"{where}: low {low} must be below high {high}")
    if kind == "log_uniform" and low <= 0:
        raise CifarBenchError(f"{where}: a log_uniform range must start above 0 (low is {low})")
    step = None if entry.get("step") is None else bound(where, "step", entry["step"], number)
    try:  # Optuna's own checks: a log range of ints from 0, a step of 0 or below, a log range with a step
        if kind == "int":
            return IntDistribution(low, high, log=entry.get("log") is True, step=1 if step is None else step)
        return FloatDistribution(low, high, log=kind == "log_uniform", step=step)
    except ValueError as error:
        raise CifarBenchError(f"{where}: {' '.join(str(error).split())}") from None


def bound(where: str, name: str, value: object, number: type) -> int | float:
    """A range's bound: a number of the entry's kind (YAML reads ``1e-3`` as text: that is read as a number too)."""
    if isinstance(value, str) and number is float:
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (number is int and not isinstance(value, int)):
        raise CifarBenchError(
            f"{where}: {name} must be {'a whole number' if number is int else 'a number'} (got {value!r})"
        )
    return number(value)


def as_choice(choice: object) -> object:
    """A categorical choice as Optuna stores one: a list or mapping (``[1024, 512]``) as its YAML text."""
    return yaml.safe_dump(choice, default_flow_style=True).strip() if isinstance(choice, (list, dict)) else choice


def as_value(choice: object) -> object:
    """The value a drawn choice stands for (the list or mapping ``as_choice`` wrote as text)."""
    return yaml.safe_load(choice) if isinstance(choice, str) and choice.startswith(("[", "{")) else choice


def fit_words(params: dict[str, object]) -> list[str]:
    """The drawn values as fit's command-line flags, e.g. ``--model.lr 0.01``."""
    return [word for name, value in params.items() for word in (f"--{name}", as_word(value))]


def as_word(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return repr(value) if isinstance(value, float) else str(value)


def overlay(params: dict[str, object]) -> dict:
    """The drawn values as a config file over a model's config (``fit --config mlp --config best.yaml``)."""
    config: dict = {}
    for name, value in params.items():
        keys = name.split(".")
        if keys[0] in CLASS_SECTIONS and len(keys) > 1 and keys[1] not in ("class_path", "init_args"):
            keys.insert(1, "init_args")
        section = config
        for key in keys[:-1]:
            section = section.setdefault(key, {})
        section[keys[-1]] = as_value(value)
    return config


def space_record(space: dict[str, BaseDistribution]) -> dict[str, dict]:
    """A space as Optuna describes each distribution: what a study records, to refuse a rerun with another space."""
    return {name: json.loads(distribution_to_json(space[name])) for name in sorted(space)}


def suggest(trial, space: dict[str, BaseDistribution]) -> dict[str, object]:
    """Draw every option of the space for ``trial`` (an Optuna trial, through its public suggest API)."""
    drawn = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            drawn[name] = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            drawn[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            drawn[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return drawn
