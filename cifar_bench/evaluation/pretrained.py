"""What a run started from (a VGG16 run's recorded starting weights) and how large its network is (as built,
and as the study counts it), said one way for evaluate, compare and the report; never guessed where not
recorded."""

from __future__ import annotations

from cifar_bench.models import known_model
from cifar_bench.models.networks.vgg16 import WEIGHT_LAYER_NAMES

NOT_RECORDED = "not recorded (the run was evaluated before runs recorded their starting weights)"


def layer_span(names: list[str]) -> str:
    """Layer names in network order, consecutive runs of three or more as ``first–last``: conv1_1–conv5_3, fc8."""
    order = {name: index for index, name in enumerate(WEIGHT_LAYER_NAMES)}
    known = sorted((name for name in names if name in order), key=order.__getitem__)
    runs: list[list[str]] = []
    for name in known:
        if runs and order[name] == order[runs[-1][-1]] + 1:
            runs[-1].append(name)
        else:
            runs.append([name])
    parts = [f"{run[0]}–{run[-1]}" if len(run) > 2 else ", ".join(run) for run in runs]
    return ", ".join(parts + [name for name in names if name not in order])


def weights_text(record: dict) -> str:
    """A record of starting weights in words: what was pretrained (from which file), what started random,
    and which random layers were never trained."""
    pretrained, random = record["pretrained_layers"], record["random_layers"]
    parts = []
    if pretrained:
        digest = f"sha256 {record['sha256']}" if record.get("sha256") else "digest not recorded"
        parts.append(f"{layer_span(pretrained)} pretrained ({record.get('file') or 'file not recorded'}, {digest})")
    if random:
        parts.append(f"{layer_span(random)} {'starts' if len(random) == 1 else 'start'} random")
    frozen = [name for name in random if name not in record["trained_layers"]]
    if frozen:
        parts.append(f"{layer_span(frozen)} {'is' if len(frozen) == 1 else 'are'} frozen random (never trained)")
    return "; ".join(parts) or "no weight layers recorded"


def loads_pretrained_weights(run: dict) -> bool:
    """Whether the run's model class (metrics.json's model_class) starts from pretrained weights: VGG16."""
    cls = known_model(run.get("model_class"))
    return cls is not None and cls.loads_pretrained_weights


def run_weights_text(run: dict) -> str | None:
    """A run's starting weights in words (``NOT_RECORDED`` where they were not); None for a model without them."""
    if run.get("weights") is not None:
        return weights_text(run["weights"])
    return NOT_RECORDED if loads_pretrained_weights(run) else None


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def params_text(counts: dict, pretrained: bool) -> str:
    """Trainable / total parameters of a run or a compare row: as the study counts them where that differs from
    the network as built (VGG16's folded fc6), the built one beside; for a model started from ``pretrained``
    weights (VGG16) whose study count was not recorded, the built one, marked as such."""
    built = f"{_count(counts['trainable_params'])} / {_count(counts['total_params'])}"
    study = (counts.get("study_trainable_params"), counts.get("study_total_params"))
    if None in study:
        return built + (" (as built; the study's count not recorded)" if pretrained else "")
    if study == (counts["trainable_params"], counts["total_params"]):
        return built
    return f"{_count(study[0])} / {_count(study[1])} (as built, fc6 folded: {built})"
