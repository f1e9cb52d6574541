"""A run folder's layout, said once, and one reader per kind of file in it, none of them trusting it.

    <save_dir>/<model>/<version>/       a run: version_N (LightningCLI's logger), seed<N> in a study
        config.yaml                     the resolved configuration (LightningCLI)
        environment.json                commit, machine, each fit session's wall time (RecordEnvironment)
        checkpoints/last.ckpt           the state after the last epoch or SIGTERM, where a resume goes on
        evaluation/                     what evaluate writes (``Evaluation``), or any folder its --out names
    <save_dir>/<model>/failed-seed<N>.json   a study's record that the run of that seed failed

The training callbacks and ``study`` write through these paths; evaluate, compare, report and predict
read through them. Checkpoints are read in ``training/checkpoints.py``: this module needs no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import takewhile
from pathlib import Path, PurePath

import yaml

from cifar_bench.errors import CifarBenchError
from cifar_bench.io import read_json_object, read_small_text
from cifar_bench.output import place

CONFIG_FILE = "config.yaml"
LAST_CHECKPOINT = "last.ckpt"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.npz"
FAILURE_MARKERS = "failed-seed*.json"
# The sections of a config that are read: each a mapping of settings, when there.
CONFIG_SECTIONS = ("model", "trainer", "data")
AFRESH = "move it aside to record this run's sessions afresh"
# A record of the weights a run started from (environment.json's ``weights``, which evaluate carries into
# metrics.json): the layer lists it holds, and the most names one may list (VGG16 has 16 weight layers).
WEIGHT_LAYER_LISTS = ("pretrained_layers", "random_layers", "trained_layers")
MAX_LISTED_LAYERS = 64


@dataclass(frozen=True)
class Evaluation:
    """The files of an evaluation folder, as ``evaluate`` writes them and compare, report and study read them."""

    path: Path

    run = property(lambda self: RunFolder(self.path.parent))  # the run evaluated: evaluate's default place
    metrics = property(lambda self: self.path / METRICS_FILE)
    predictions = property(lambda self: self.path / PREDICTIONS_FILE)
    predictions_csv = property(lambda self: self.path / "predictions.csv")
    summary = property(lambda self: self.path / "summary.txt")
    curves = property(lambda self: self.path / "curves.png")
    sample_predictions = property(lambda self: self.path / "sample_predictions.png")

    def split_file(self, kind: str, split: str, suffix: str) -> Path:
        """A split's file: ``classification_report``, ``confusion`` or ``reliability``, e.g. confusion_test.png."""
        return self.path / f"{kind}_{split}{suffix}"


@dataclass(frozen=True)
class RunFolder:
    """One training run's folder; its paths, and its config.yaml and environment.json read without trust."""

    path: Path

    @classmethod
    def of_checkpoint(cls, checkpoint: Path) -> RunFolder:
        """The run a checkpoint file belongs to: the folder above its checkpoints/, else the folder it is in."""
        folder = checkpoint.parent
        return cls(folder.parent if folder.name == "checkpoints" else folder)

    @classmethod
    def in_study(cls, save_dir: Path, model: str, seed: int) -> RunFolder:
        """Where ``study`` keeps the run of one model and seed (the logger's version is ``seed<N>``)."""
        return cls(save_dir / model / f"seed{seed}")

    model_name = property(lambda self: self.path.parent.name)  # the logger's name: <save_dir>/<name>/<version>
    config_file = property(lambda self: self.path / CONFIG_FILE)
    environment_file = property(lambda self: self.path / "environment.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.checkpoints / LAST_CHECKPOINT)
    evaluation = property(lambda self: Evaluation(self.path / "evaluation"))
    # Where ``study`` records that this run failed to train or evaluate: beside it, ``failed-seed<N>.json``.
    failure_marker = property(lambda self: self.path.with_name(f"failed-{self.path.name}.json"))

    def read_environment(self) -> dict:
        """environment.json, whose fit sessions are objects with a wall time (what a resumed fit adds to)."""
        environment = read_json_object(self.environment_file, AFRESH)
        sessions = environment.get("sessions")
        if not isinstance(sessions, list) or not all(
            isinstance(session, dict) and is_duration(session.get("wall_s")) for session in sessions
        ):
            raise CifarBenchError(f"{self.environment_file} holds no list of fit sessions with their wall_s: {AFRESH}")
        return environment

    def _environment_field(self, key: str):
        """A field of environment.json; None where it is missing or the file is unreadable."""
        try:
            return read_json_object(self.environment_file, "").get(key)
        except CifarBenchError:
            return None

    def _sessions(self) -> list:
        sessions = self._environment_field("sessions")
        return sessions if isinstance(sessions, list) else []

    def training_time(self) -> float | None:
        """The run's training time, its fit sessions' wall times summed in environment.json; None for a run
        without one (trained before it was recorded, or without the callback) or with an unreadable one."""
        wall_s = self._environment_field("wall_s")
        return float(wall_s) if is_duration(wall_s) else None

    def weights_record(self) -> dict | None:
        """The weights the run started from, as its first fit session recorded them in environment.json (a
        file by its name and SHA-256; which layers started pretrained, random, and are trained); None where
        none is recorded (a model without pretrained weights, a run from before they were) or it is unusable."""
        record = self._environment_field("weights")
        return record if record is not None and weights_problem(record) is None else None

    def feature_store_time(self) -> float | None:
        """Of the training time, the time its fit sessions spent opening or building a VGG16 feature store; None
        where it is not recorded (runs before it was) or unreadable."""
        spent = [session.get("feature_store_s") for session in self._sessions() if isinstance(session, dict)]
        return float(sum(spent)) if spent and all(map(is_duration, spent)) else None

    def feature_store_record(self) -> dict | None:
        """The feature store the run's latest fit session read (digest, views, build time); None for a run
        without one (a model without a store, a run from before it was recorded) or with an unusable one."""
        sessions = self._sessions()
        record = sessions[-1].get("feature_store") if sessions and isinstance(sessions[-1], dict) else None
        return record if record is not None and store_record_problem(record) is None else None


def store_record_problem(record: object) -> str | None:
    """What makes a record of the feature store a run read unusable, or None: an object with a hexadecimal
    ``digest``, a positive whole number of ``views`` and a ``build_s`` that is a duration or null."""
    if not isinstance(record, dict):
        return "it is not an object"
    digest, views, build_s = record.get("digest"), record.get("views"), record.get("build_s")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{1,64}", digest):
        return f"digest {digest!r} is not a hexadecimal digest"
    if not (is_integer(views) and views > 0):
        return f"views {views!r} is not a positive whole number"
    if build_s is not None and not is_duration(build_s):
        return f"build_s {build_s!r} is not a duration"
    return None


def weights_problem(record: object) -> str | None:
    """What makes a record of a run's starting weights unusable, or None: an object whose ``file`` is a file's
    name (never a path) or null, ``sha256`` 64 lowercase hexadecimal digits or null, and each of
    ``WEIGHT_LAYER_LISTS`` a list of at most ``MAX_LISTED_LAYERS`` short names."""
    if not isinstance(record, dict):
        return f"{type(record).__name__}, not an object"
    file, digest = record.get("file"), record.get("sha256")
    if file is not None and not (isinstance(file, str) and 0 < len(file) <= 255 and not re.search(r"[/\\\x00]", file)):
        return f"file {file!r} is not a file's name"
    if digest is not None and not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        return f"sha256 {digest!r} is not a SHA-256 digest"
    for key in WEIGHT_LAYER_LISTS:
        names = record.get(key)
        if not isinstance(names, list) or len(names) > MAX_LISTED_LAYERS:
            return f"{key} is not a list of at most {MAX_LISTED_LAYERS} layer names"
        if not all(isinstance(name, str) and 0 < len(name) <= 32 for name in names):
            return f"{key} holds something other than layer names"
    return None


def is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_count(value: object) -> bool:
    return is_integer(value) and value >= 0


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_fraction(value: object) -> bool:
    return is_number(value) and 0 <= value <= 1  # NaN fails


# The longest duration a file may record: ten years (sums and means of such never overflow to infinity).
MAX_DURATION_S = 10 * 365 * 86400


def is_duration(value: object) -> bool:
    return is_number(value) and 0 <= value <= MAX_DURATION_S  # NaN fails


# The largest config read: a real one is ~5 KB; parsing YAML costs microseconds an entry even with libyaml,
# so a hostile list of millions of numbers held a report for minutes.
MAX_CONFIG_FILE = 256 * 2**10
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where PyYAML was built with it


# Entries and characters a config may expand to, aliases followed: more than a file of MAX_CONFIG_FILE holds
# without them (a real one holds a few hundred entries), while a chain of YAML aliases under 1 KB expands to
# billions, which printing a setting or copying the config (``portable_config``) then builds whole; and how deep
# it may nest (a real one: 6), past which walking it recursed out of the stack.
MAX_CONFIG_ENTRIES = 1_000_000
MAX_CONFIG_DEPTH = 64
# The leading comment a config keeps as evidence: LightningCLI's version line (``# pytorch_lightning==2.6.6``).
VERSION_COMMENT = re.compile(r"# [\w.-]+==[\w.+-]+\n?")


def _bound_exceeded(value: object) -> str | None:
    """What ``value`` exceeds, each shared entry counted every time it is reached, or None."""
    budget, pending = MAX_CONFIG_ENTRIES, [(value, 0)]
    while pending:
        item, depth = pending.pop()
        budget -= 1 + (len(item) if isinstance(item, (str, bytes)) else 0)
        if budget < 0:
            return f"expands to more than {MAX_CONFIG_ENTRIES:,} entries and characters (YAML aliases?)"
        if depth > MAX_CONFIG_DEPTH:
            return f"nests deeper than {MAX_CONFIG_DEPTH} levels"
        if isinstance(item, dict):
            pending += [(inner, depth + 1) for inner in (*item.keys(), *item.values())]
        elif isinstance(item, (list, tuple, set)):
            pending += [(inner, depth + 1) for inner in item]
    return None


def read_config(path: Path, advice: str) -> dict:
    """A config (a run's config.yaml, a model's YAML) read as a bounded regular file whose sections that are
    read (``CONFIG_SECTIONS``) are mappings where present: ``model: abc`` or ``trainer: [1]`` were
    AttributeErrors. Anything else is one error naming the file, ending in ``advice``."""
    return _read_config_text(path, advice)[1]


def _read_config_text(path: Path, advice: str) -> tuple[str, dict]:
    """``read_config``'s text and settings, from one read."""
    try:
        text = read_small_text(path, MAX_CONFIG_FILE)
        config = yaml.load(text, Loader=SAFE_LOADER)
    except (yaml.YAMLError, OSError, ValueError, RecursionError) as error:
        reason = f"{type(error).__name__}: {error}" if isinstance(error, OSError) else type(error).__name__
        raise CifarBenchError(f"{path} is not readable YAML ({reason}): {advice}")
    if not isinstance(config, dict):
        raise CifarBenchError(f"{path} holds no configuration: {advice}")
    exceeded = _bound_exceeded(config)
    if exceeded is not None:
        raise CifarBenchError(f"{path} {exceeded}: {advice}")
    odd = next(
        (key for key in CONFIG_SECTIONS if config.get(key) is not None and not isinstance(config[key], dict)), None
    )
    if odd is not None:
        raise CifarBenchError(f"{path} holds a {type(config[odd]).__name__} as {odd}, not its settings: {advice}")
    return text, config


def portable_config(path: Path) -> bytes:
    """A run's config.yaml as committed evidence: every absolute path it holds as a value named as
    ``output.place`` names one, relative to the current folder where it lies inside it, else by its name (the
    weights file: its digest is in environment.json), so evidence names no place on the machine that ran it;
    of its leading comment, only the version line kept."""
    text, config = _read_config_text(path, "remove the run's folder and train it again")
    comment = takewhile(lambda line: line.startswith("#"), text.splitlines(keepends=True))
    header = "".join(line for line in comment if VERSION_COMMENT.fullmatch(line))
    return (header + yaml.safe_dump(_named_paths(config, Path.cwd()), sort_keys=False)).encode()


def _named_paths(value: object, folder: Path) -> object:
    if isinstance(value, dict):
        return {key: _named_paths(item, folder) for key, item in value.items()}  # names kept: two never merge
    if isinstance(value, (list, tuple)):
        return [_named_paths(item, folder) for item in value]
    if isinstance(value, set):
        return {_named_paths(item, folder) for item in value}
    if isinstance(value, str) and PurePath(value).is_absolute():
        return place(value, folder)
    return value
