"""The study's conclusions, checked against the evaluated runs: each with a verdict and its evidence.

An accuracy claim "A is better than B" is judged on the difference A − B and its 95% interval: where both
models have runs of two seeds or more with test predictions, the mean of the per-seed paired differences (the
runs of one seed on the same test images, each with McNemar's exact p) with an interval for the seeds' spread
and the test images' sampling noise (``paired``); with one such seed, that seed's paired interval; without
predictions, the unpaired one (Newcombe's hybrid interval from each model's own interval), and the report says
which predictions are missing. Supported when the whole interval is above 0, contradicted when it is below,
not shown when it holds 0. The resource claim is judged on the measured training time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cifar_bench.data.sources import NUM_CLASSES
from cifar_bench.errors import CifarBenchError
from cifar_bench.evaluation.compare import accuracy_interval, mean_std
from cifar_bench.evaluation.evaluated import evaluation_of
from cifar_bench.evaluation.evaluation_files import format_duration
from cifar_bench.evaluation.paired import first_seed_run, mcnemar_p_text, paired_comparison, seed_pairs, seeds_text
from cifar_bench.evaluation.pretrained import loads_pretrained_weights, params_text
from cifar_bench.evaluation.reference import study_epochs
from cifar_bench.evaluation.statistics import newcombe_difference
from cifar_bench.evaluation.store_time import row_times, share_text, shared_stores
from cifar_bench.report.blocks import bullets, heading, paragraph, run_config, run_file
from cifar_bench.run_folder import CONFIG_SECTIONS, PREDICTIONS_FILE

SUPPORTED, CONTRADICTED, NOT_SHOWN, PARTLY, UNCHECKED, CONFOUNDED = (
    "Supported.",
    "Not supported: our runs show the opposite.",
    "Not shown: the difference's interval holds 0.",
    "Partly supported.",
    "Cannot be checked here.",
    "None: the comparison is confounded (the runs differ in more than the claim is about).",
)


def model_accuracy(runs: list[dict]) -> tuple[float, float, float]:
    """A model's test accuracy (mean over runs) and its 95% interval, as compare gives them."""
    mean, _ = mean_std([run["splits"]["test"]["accuracy"] for run in runs])
    interval = accuracy_interval(runs)
    return mean, interval["test_accuracy_ci_low"], interval["test_accuracy_ci_high"]


def predictions_readable(directory: Path) -> Callable[[dict], bool]:
    """Whether a run's test predictions can be read where the report reads (``run_file``: no link below it)."""
    return lambda run: run_file(directory, evaluation_of(run).predictions) is not None


def missing_predictions(models: list[str], runs: dict[str, list[dict]], directory: Path) -> list[str]:
    """The models none of whose runs has readable test predictions beside its metrics.json."""
    readable = predictions_readable(directory)
    return [model for model in models if not any(map(readable, runs[model]))]


def better(first: str, second: str, runs: dict[str, list[dict]], directory: Path) -> tuple[str | None, str]:
    """Whether ``first`` has the higher test accuracy than ``second``: (verdict, one line of evidence);
    the verdict is None when a model has no evaluated run."""
    absent = [model for model in (first, second) if model not in runs]
    if absent:
        return None, f"{first} − {second}: no evaluated run of {' or '.join(absent)}"
    missing = missing_predictions([first, second], runs, directory)
    if not missing:
        try:
            paired = paired_comparison([first, second], runs, predictions_readable(directory))
        except CifarBenchError as error:
            reason = str(error)
        else:
            seeds = paired["across_seeds"]
            if seeds:
                return _verdict(seeds["ci_low"], seeds["ci_high"]), f"{first} − {second} {seeds_text(seeds)}"
            line = (
                f"{first} − {second}: {paired['difference']:+.4f} on the same {paired['images']} test images, 95% CI "
                f"[{paired['ci_low']:+.4f}, {paired['ci_high']:+.4f}] (paired), {mcnemar_p_text(paired['mcnemar_p'])} "
                f"({paired['only_first_right']} images right only by {first}, {paired['only_second_right']} only by {second})"
            )
            return _verdict(paired["ci_low"], paired["ci_high"]), line + (
                f"; {paired['note']}" if paired["note"] else ""
            )
    else:
        reason = f"no test predictions ({PREDICTIONS_FILE}) for {' and '.join(missing)}: run evaluate to write them"
    a, b = model_accuracy(runs[first]), model_accuracy(runs[second])
    difference, low, high = newcombe_difference(a, b)
    line = (
        f"{first} − {second}: {a[0]:.4f} − {b[0]:.4f} = {difference:+.4f}, 95% CI [{low:+.4f}, {high:+.4f}] "
        f"(unpaired, Newcombe; {reason}; so no paired test or McNemar p)"
    )
    return _verdict(low, high), line


def _verdict(low: float, high: float) -> str:
    return SUPPORTED if low > 0 else CONTRADICTED if high < 0 else NOT_SHOWN


def combined(verdicts: list[str | None]) -> str:
    """One verdict for a claim made of several comparisons."""
    if any(verdict is None for verdict in verdicts):
        return UNCHECKED
    if CONFOUNDED in verdicts:
        return CONFOUNDED
    if all(verdict == SUPPORTED for verdict in verdicts):
        return SUPPORTED
    if all(verdict == CONTRADICTED for verdict in verdicts):
        return CONTRADICTED
    return PARTLY if SUPPORTED in verdicts else NOT_SHOWN if CONTRADICTED not in verdicts else "Not supported."


def recipe_settings(run: dict, directory: Path) -> dict:
    """The settings of a run's config.yaml that make its recipe: the model's init_args, epochs and batch size."""
    config = run_config(directory, evaluation_of(run).run) or {}
    sections = {key: config.get(key) or {} for key in CONFIG_SECTIONS}  # mappings: read_config checked them
    settings = sections["model"].get("init_args")
    settings = dict(settings) if isinstance(settings, dict) else {}
    return settings | {
        "max_epochs": sections["trainer"].get("max_epochs"),
        "batch_size": sections["data"].get("batch_size"),
    }


def differing_settings(first: str, second: str, runs: dict[str, list[dict]], directory: Path) -> dict[str, tuple]:
    """The settings that differ between two models' runs of each seed both have (else their first-seed runs):
    name -> (first's value, second's), from the first pair that differs in it."""
    if first not in runs or second not in runs:
        return {}
    pairs = [(a, b) for _, a, b in seed_pairs([first, second], runs)]
    differing: dict[str, tuple] = {}
    for pair in pairs or [(first_seed_run(first, runs), first_seed_run(second, runs))]:
        a, b = (recipe_settings(run, directory) for run in pair)
        for key in dict.fromkeys([*a, *b]):
            if a.get(key) != b.get(key):
                differing.setdefault(key, (a.get(key, "-"), b.get(key, "-")))
    return differing


def recipe_differences(first: str, second: str, differing: dict[str, tuple], about: dict[str, str] | None) -> str:
    """What differs between two models' runs (their configs' settings, epochs as in the study), and, for a claim
    about some settings only, why a differing one belongs to the claim where that is not plain, and which
    others confound it."""
    listed = [f"{key} {a} vs {b}" for key, (a, b) in differing.items()]
    study = f"the study trained them {study_epochs(first) or '-'} and {study_epochs(second) or '-'} epochs"
    line = f"{first} vs {second}, settings that differ: {'; '.join(listed) or 'none'} ({study})."
    reasons = [f"{key}: {about[key]}" for key in differing if about is not None and about.get(key)]
    confounders = [key for key in differing if about is not None and key not in about]
    line += f" Part of the claim: {'; '.join(reasons)}." if reasons else ""
    return line + (f" Confounded by: {', '.join(confounders)}." if confounders else "")


def accuracy_claim(
    title: str,
    claim: str,
    pairs: list[tuple[str, str]],
    runs,
    directory: Path,
    extra=(),
    about: dict[str, str] | None = None,
    note: str = "",
) -> list[dict]:
    """A claim "first beats second" per pair; where it is ``about`` some settings only (a controlled comparison:
    setting -> why it belongs to the claim, where that is not plain), a pair whose runs differ in any other
    setting gets no verdict: the report says by what it is confounded. A claim about whole models (``about``
    None) says in ``note`` why their differing recipes are part of what is compared."""
    results = [better(first, second, runs, directory) for first, second in pairs]
    differing = [differing_settings(first, second, runs, directory) for first, second in pairs]
    confounded = [about is not None and bool(set(found) - about.keys()) for found in differing]
    verdicts = [CONFOUNDED if mixed and verdict else verdict for (verdict, _), mixed in zip(results, confounded)]
    verdicts += [verdict for verdict, _ in extra]
    evidence = [line for _, line in results] + [line for _, line in extra]
    evidence += [
        recipe_differences(first, second, found, about)
        for (first, second), found in zip(pairs, differing)
        if first in runs and second in runs
    ]
    return claim_blocks(title, claim, combined(verdicts), [line for line in [*evidence, note] if line])


def claim_blocks(title: str, claim: str, verdict: str, evidence: list[str]) -> list[dict]:
    """A claim checked: its heading, the study's words, the verdict and its evidence."""
    return [
        heading(title, 3),
        paragraph(f"The study: “{claim}”"),
        paragraph("", strong=f"Verdict: {verdict}"),
        bullets(evidence),
    ]


def above_random(model: str, runs: dict[str, list[dict]], chance: float) -> tuple[str | None, str]:
    if model not in runs:
        return None, f"{model} against random guessing: no evaluated run of {model}"
    mean, low, high = model_accuracy(runs[model])
    line = f"{model} {mean:.4f}, 95% CI [{low:.4f}, {high:.4f}], against random guessing's {chance:.2f}"
    return _verdict(low - chance, high - chance), line


def resource_claim(runs: dict[str, list[dict]]) -> list[dict]:
    """Transfer learning (the VGG16 models) against training from scratch (the CNNs), by measured training time:
    a VGG16 row's own time, and with its share of the feature store's build (``store_time``), judged on both."""
    transfer = [model for model in runs if model.startswith("vgg16")]
    scratch = [model for model in ("cnn", "cnn_bn_do") if model in runs]
    times, stores = {}, shared_stores(runs)
    for model in transfer + scratch:
        values = row_times(runs[model], stores.get(model))
        times[model] = mean_std(values)[0] if values else None
    shared = {model: times[model] + stores[model]["share_s"] for model in transfer if model in stores and times[model]}
    lines = []
    for model in transfer + scratch:
        run = runs[model][0]
        epochs = run.get("epochs_trained")
        per_epoch = f", {format_duration(times[model] / epochs)} an epoch" if times[model] and epochs else ""
        share = share_text(stores[model]) if model in shared else ""
        lines.append(
            f"{model} ({'transfer' if model in transfer else 'from scratch'}): training time {format_duration(times[model])}"
            f"{share} over {epochs} epochs{per_epoch}; trainable / total parameters "
            f"{params_text(run, loads_pretrained_weights(run))}"
        )
    timed_scratch = [times[model] for model in scratch if times[model] is not None]
    if not transfer or not timed_scratch or any(times[model] is None for model in transfer):
        verdict = UNCHECKED
        lines.append("Needs a measured training time (environment.json) of a VGG16 model and of a CNN.")
    else:
        judged = [("", times)] + ([(", with its share of the store's build", times | shared)] if shared else [])
        for how, compared in judged:
            cheaper = [model for model in transfer if compared[model] < min(timed_scratch)]
            dearer = [model for model in transfer if model not in cheaper]
            lines.append(
                f"Trained in less time than every CNN{how}: {', '.join(cheaper) or 'none'}; in more: "
                f"{', '.join(dearer) or 'none'} (times as each run measured them, on the machine in its recipe)."
            )
        verdict = SUPPORTED if not dearer else "Not supported." if not cheaper else PARTLY
        if len(judged) > 1:
            lines.append("The verdict counts each VGG16 row with its share of the store's build: its whole cost.")
    lines.append(
        "The claim is about the two ways to train as a whole: the networks, their optimizers and how a VGG16 row's "
        "epochs are fed (from the feature store) differ by design; a time is each run's own, on its machine."
    )
    title = "Transfer learning needs less resource than training from scratch"
    claim = "[Transfer learning] needs less resource to train than training a model from scratch."
    return claim_blocks(title, claim, verdict, lines)


def claims_chapter(runs: dict[str, list[dict]], directory: Path) -> list[dict]:
    """The study's four conclusions, in its order."""
    chance = 1 / NUM_CLASSES
    return [
        heading("The study's conclusions, checked", anchor="claims"),
        *accuracy_claim(
            "Batch normalization and dropout raise test accuracy",
            "Adding more batch normalization and dropout to the same model will result in test accuracy increment.",
            [("cnn_bn_do", "cnn")],
            runs,
            directory,
            about={"batch_norm": "", "dropout": ""},
        ),
        *accuracy_claim(
            "Training more VGG16 layers raises test accuracy",
            "Training more VGG16 layers results in accuracy increment.",
            [("vgg16_last3", "vgg16_last2"), ("vgg16_last5", "vgg16_last3")],
            runs,
            directory,
            about={
                "trainable_layers": "",
                "pretrained_lr_scale": "the learning rate of the trained layers that start pretrained, part of how "
                "the added layers are trained (which layers start pretrained: each chapter's starting weights)",
            },
        ),
        *accuracy_claim(
            "The MLP does worse than the CNNs and better than random",
            "MLP network did worse than CNN networks but still works better than random classifier.",
            [("cnn", "mlp"), ("cnn_bn_do", "mlp")],
            runs,
            directory,
            extra=[above_random("mlp", runs, chance)],
            note="The claim is about the models as each is trained: each runs its packaged recipe, chosen on "
            "validation (the recipes chapter says from which sweep), so the settings that differ are part of what "
            "is compared, not confounders.",
        ),
        *resource_claim(runs),
    ]
