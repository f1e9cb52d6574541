"""`cifar-bench report`: the study's report from evaluated runs, read as a reader would read it.

The runs: the session's tiny MLP evaluated (two seeds), and copies of its evaluation filed as cnn and
cnn_bn_do (cnn_bn_do without its predictions), so every chapter and both kinds of evidence (paired,
unpaired) appear without training more models.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from conftest import ALIAS_CHAIN, copy_run, github_rendered, snapshot
from PIL import Image
from rich.console import Console

from cifar_bench.cli import main
from cifar_bench.configs import model_names
from cifar_bench.evaluation.compare import compare
from cifar_bench.evaluation.evaluate import evaluate
from cifar_bench.evaluation.reference import STUDY_COUNTS, STUDY_TABLE, study_accuracy, study_class_accuracy
from cifar_bench.evaluation.statistics import mcnemar_exact_p, newcombe_difference, wilson_interval
from cifar_bench.report.chapters import layer_blocks
from cifar_bench.report.command import report

EVIL = "<img src=x onerror=alert(1)>\x1b[2J|[link](http://evil.example) www.evil.example mail@evil.example"


def test_the_studys_counts_are_kept_for_every_model_and_round_to_its_table():
    assert sorted(STUDY_COUNTS) == sorted(STUDY_TABLE) == model_names()
    for model, (rounded, _) in STUDY_TABLE.items():
        assert round(study_accuracy(model), 2) == rounded
    assert study_accuracy("mlp") == 5053 / 10000 and study_accuracy("cnn_bn_do", "train") == 48417 / 50000
    assert study_class_accuracy("cnn", "test")["cat"] == (672, 1000)


def filed_as(evaluated: Path, logs: Path, model: str, version: int = 0, seed: int | None = None) -> Path:
    """A copy of an evaluated run filed under another model name (and seed), as evaluate would have written it."""
    folder = Path(shutil.copytree(evaluated, logs / model / f"version_{version}"))
    metrics_path = folder / "evaluation" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["model"] = model
    metrics["seed"] = metrics["seed"] if seed is None else seed
    metrics_path.write_text(json.dumps(metrics))
    return folder


@pytest.fixture(scope="module")
def logs(trained_mlp, imbalanced_data, tmp_path_factory) -> Path:
    logs = tmp_path_factory.mktemp("report_logs")
    run = copy_run(trained_mlp, logs)
    evaluate(str(run), data_dir=str(imbalanced_data), batch_size=64, console=Console(file=io.StringIO()))
    filed_as(run, logs, "mlp", version=1, seed=1)
    filed_as(run, logs, "cnn")
    (filed_as(run, logs, "cnn_bn_do") / "evaluation" / "predictions.npz").unlink()
    return logs


@pytest.fixture(scope="module")
def written(logs, imbalanced_data) -> dict:
    console = Console(file=io.StringIO(), width=300)
    report(str(logs), data_dir=str(imbalanced_data), console=console)
    return {
        "html": (logs / "report.html").read_text(),
        "markdown": (logs / "report.md").read_text(),
        "printed": console.file.getvalue(),
    }


class Page(HTMLParser):
    """Every attribute that fetches or links something, and the page's visible text."""

    def __init__(self):
        super().__init__()
        self.references, self.text, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.references += [
            value for name, value in attrs if name in ("src", "href", "srcset", "data", "poster", "action")
        ]

    def handle_data(self, data):
        self.text.append(data)


def parsed(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    return parser


def test_every_chapter_is_there_in_the_studys_order(written):
    text = " ".join(parsed(written["html"]).text)
    chapters = ["The data", "mlp", "cnn", "cnn_bn_do", "Results and comparisons", "The study's conclusions, checked"]
    positions = [text.index(f"{chapter}") for chapter in chapters]
    assert positions == sorted(positions)
    for section in ("Architecture", "Recipe", "Training loss and accuracy", "Classification reports",
                    "Confusion matrices", "Sample predictions", "Calibration", "Per-class accuracy, beside the study's"):  # fmt: skip
        assert text.count(section) == 3, section  # once per model
    assert "2 runs (seeds 0, 1)" in text  # the MLP's two seeds: mean ± std
    assert text.count("The network's layers, rebuilt from the run's config.yaml:") == 3  # as the run counted them
    assert "Linear(in_features=3072, out_features=" in text
    assert "Images per split and class" in text and "Per-channel statistics" in text


def test_per_class_lines_stand_beside_the_studys_figure_and_the_difference(logs, written):
    metrics = json.loads((logs / "cnn" / "version_0" / "evaluation" / "metrics.json").read_text())
    ours = metrics["splits"]["test"]["per_class"]["cat"]
    accuracy = ours["correct"] / ours["support"]
    row = (
        f"| Test accuracy of cat | {accuracy:.2%} ({ours['correct']}/{ours['support']}) | 67.20% (672/1000) | "
        f"{(accuracy - 0.672) * 100:+.2f} pp |"
    )
    assert row in written["markdown"]
    assert "| Train accuracy of truck |" in written["markdown"] and "89.00% (4450/5000)" in written["markdown"]
    # two identical seeds of mlp: the mean and a std of 0
    assert f"| Test accuracy of cat | {accuracy:.2%} ± 0.00 | 27.50% (275/1000) |" in written["markdown"]
    # the comparison table holds the study's exact figure, not its rounded one
    assert "| 0.8876 |" in written["markdown"] and "| 0.5053 |" in written["markdown"]


def test_the_studys_claims_are_checked_with_their_evidence(logs, written):
    markdown = written["markdown"]
    claims = markdown[markdown.index("The study's conclusions, checked") :]
    # cnn_bn_do has no predictions: the unpaired difference, and the report says what is missing
    bn = claims[: claims.index("Training more VGG16 layers")]
    assert "no test predictions (predictions.npz) for cnn\\_bn\\_do" in bn and "unpaired, Newcombe" in bn
    assert "**Verdict: Not shown: the difference's interval holds 0.**" in bn  # the same model under two names
    # cnn and mlp have theirs: paired, with McNemar's p (the same predictions: no discordant pair, p = 1)
    mlp = claims[claims.index("The MLP does worse") : claims.index("Transfer learning needs")]
    assert "cnn − mlp: +0.0000 on the same" in mlp and "McNemar exact p = 1" in mlp
    assert "against random guessing's 0.10" in mlp
    vgg = claims[claims.index("Training more VGG16 layers") : claims.index("The MLP does worse")]
    assert "**Verdict: Cannot be checked here.**" in vgg and "no evaluated run of vgg16\\_last3 or vgg16\\_last2" in vgg
    assert "**Verdict: Cannot be checked here.**" in claims[claims.index("Transfer learning needs") :]
    low, high = wilson_interval(1, 2)
    assert newcombe_difference((0.5, low, high), (0.5, low, high))[0] == 0


def test_the_page_references_nothing_outside_itself_and_every_image_decodes(logs, written):
    page = parsed(written["html"])
    assert page.references, "the figures are there"
    for reference in page.references:
        assert reference.startswith(("data:image/png;base64,", "#")), reference[:80]
    assert "script" not in page.tags and "link" not in page.tags and "url(" not in written["html"]
    images = [reference for reference in page.references if reference.startswith("data:")]
    assert len(images) >= 3 * 5 + 1  # curves, 2 confusion matrices, reliability, samples per model; the data grid
    for reference in images:
        Image.open(io.BytesIO(base64.b64decode(reference.split(",", 1)[1]))).verify()
    linked = re.findall(r"!\[[^\]]*\]\((report_files/[^)]+)\)", written["markdown"])
    assert len(linked) == len(images)
    for name in linked:
        Image.open(logs / name).verify()


def test_each_classification_report_keeps_its_lines_in_the_page(written):
    page = parsed(written["html"])
    reports = [text for text in page.text if "precision    recall  f1-score   support" in text]
    assert len(reports) == 2 * 3  # train and test, per model
    for report_text in reports:
        lines = report_text.split("\n")
        assert len(lines) >= 3 + 10 and "\\n" not in report_text  # a header, a line per class, the averages
        assert lines[0].split() == ["precision", "recall", "f1-score", "support"]


def test_the_command_says_where_the_report_went_and_what_to_run_next(logs, written):
    printed = " ".join(written["printed"].split())
    assert f"Report written to {logs / 'report.html'}" in printed and "Next: open" in printed


def test_hostile_names_are_shown_as_written_never_as_markup(logs, tmp_path):
    hostile = shutil.copytree(logs / "mlp" / "version_0", tmp_path / "evil" / "version_0")
    metrics_path = hostile / "evaluation" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["model"] = EVIL
    metrics["class_names"][0] = EVIL
    for split in metrics["splits"].values():
        split["per_class"] = {EVIL if name == "airplane" else name: row for name, row in split["per_class"].items()}
    metrics_path.write_text(json.dumps(metrics))
    report(str(tmp_path), console=Console(file=io.StringIO()))
    page, markdown = (tmp_path / "report.html").read_text(), (tmp_path / "report.md").read_text()
    assert "<img src=x" not in page and "\x1b" not in page and "http://evil" not in parsed(page).references
    assert html.escape("<img src=x onerror=alert(1)>") + "\\x1b[2J" in page
    assert "\x1b" not in markdown
    outside_code = re.sub(r"```text\n.*?\n```", "", markdown, flags=re.S)  # a code block shows text as written
    assert "<img src=x" not in outside_code and "[link](http" not in outside_code  # written \\[link\\]: no link
    on_github = github_rendered(markdown)  # neither a link nor an address becomes one, nor an image
    assert not [attributes for tag, attributes in on_github.tags if "href" in attributes]
    assert {attributes["src"].split("/")[0] for tag, attributes in on_github.tags if tag == "img"} == {"report_files"}
    assert "No data folder was given" in page


@pytest.mark.parametrize(
    "changed, verdict",
    [
        ({"dropout": 0.25}, "**Verdict: Not shown: the difference's interval holds 0.**"),  # what the claim is about
        ({"dropout": 0.25, "lr": 0.5}, "**Verdict: None: the comparison is confounded"),  # and something else
    ],
    ids=["controlled", "confounded"],
)
def test_a_claim_about_one_change_gets_a_verdict_only_from_runs_that_differ_in_it_alone(
    logs, tmp_path, changed, verdict
):
    for model in ("cnn", "cnn_bn_do"):
        shutil.copytree(logs / "cnn", tmp_path / model)
    config_file = tmp_path / "cnn_bn_do" / "version_0" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["model"]["init_args"] |= changed
    config_file.write_text(yaml.safe_dump(config))
    metrics_file = tmp_path / "cnn_bn_do" / "version_0" / "evaluation" / "metrics.json"
    metrics_file.write_text(json.dumps(json.loads(metrics_file.read_text()) | {"model": "cnn_bn_do"}))
    report(str(tmp_path), data_dir=str(tmp_path / "no_data"), console=Console(file=io.StringIO()))
    text = (tmp_path / "report.md").read_text()
    bn = text[text.index("### Batch normalization and dropout") : text.index("### Training more VGG16 layers")]
    assert verdict in bn
    assert ("Confounded by: lr." in bn) == ("lr" in changed)


def test_a_setting_that_belongs_to_a_controlled_claim_is_said_to_and_why_and_whole_model_claims_say_why_they_are_not_confounded(
    logs, tmp_path
):
    for model, settings in (("vgg16_last3", {"trainable_layers": 3}), ("vgg16_last5", {"trainable_layers": 5})):
        shutil.copytree(logs / "cnn", tmp_path / model)
        config_file = tmp_path / model / "version_0" / "config.yaml"
        config = yaml.safe_load(config_file.read_text())
        config["model"]["init_args"] |= settings | {"pretrained_lr_scale": 0.1 if model == "vgg16_last5" else 1.0}
        config_file.write_text(yaml.safe_dump(config))
        metrics_file = tmp_path / model / "version_0" / "evaluation" / "metrics.json"
        metrics_file.write_text(json.dumps(json.loads(metrics_file.read_text()) | {"model": model}))
    report(str(tmp_path), data_dir=str(tmp_path / "no_data"), console=Console(file=io.StringIO()))
    text = (tmp_path / "report.md").read_text()
    vgg = text[text.index("### Training more VGG16 layers") : text.index("### The MLP does worse")]
    assert "**Verdict: None: the comparison is confounded" not in vgg and "Confounded by" not in vgg
    assert "Part of the claim: pretrained\\_lr\\_scale: the learning rate of the trained layers that start" in vgg
    mlp = text[text.index("### The MLP does worse") : text.index("### Transfer learning")]
    assert "each runs its packaged recipe, chosen on validation" in mlp
    assert "differ by design" in text[text.index("### Transfer learning") :]


def with_test_predictions(run: Path, predicted) -> None:
    """Rewrite a run's test predictions as ``predicted(labels)``."""
    path = run / "evaluation" / "predictions.npz"
    with np.load(path) as content:
        arrays = {key: content[key] for key in content.files}
    arrays["test_predictions"] = predicted(arrays["test_labels"])
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize("second_seed_right", [True, False], ids=["agreeing_seeds", "disagreeing_seeds"])
def test_a_claim_between_models_with_several_seeds_rests_on_each_seeds_pair_and_the_interval_of_their_mean(
    logs, tmp_path, second_seed_right
):
    run = logs / "mlp" / "version_0"
    for seed in (0, 1):
        filed_as(run, tmp_path, "cnn", version=seed, seed=seed)
        with_test_predictions(filed_as(run, tmp_path, "cnn_bn_do", version=seed, seed=seed), lambda labels: labels)
    filed_as(run, tmp_path, "cnn_bn_do", version=5, seed=5)  # a seed cnn has no run of: left out
    if not second_seed_right:  # cnn_bn_do's seed-1 run wrong everywhere
        with_test_predictions(tmp_path / "cnn_bn_do" / "version_1", lambda labels: (labels + 1) % 10)
    with np.load(run / "evaluation" / "predictions.npz") as content:
        n, wrong = len(content["test_labels"]), int((content["test_predictions"] != content["test_labels"]).sum())
    # seed 0: cnn_bn_do right where cnn is wrong; seed 1: the same, or wrong everywhere (right only by cnn)
    discordant = [(wrong, 0), (wrong, 0) if second_seed_right else (0, n - wrong)]
    differences = [(b - c) / n for b, c in discordant]
    errors = [math.sqrt(b + c - (b - c) ** 2 / n) / n for b, c in discordant]  # each seed's paired standard error
    mean, spread = sum(differences) / 2, 12.7062047362 * abs(differences[0] - differences[1]) / 2  # t_{0.975, 1}
    half = math.hypot(spread, 1.959963984540054 * sum(errors) / 2)

    compare(str(tmp_path), pair=["cnn_bn_do", "cnn"], console=Console(file=io.StringIO()))
    seeds = json.loads((tmp_path / "comparison_pair.json").read_text())["across_seeds"]
    assert seeds["seeds"] == [0, 1] and seeds["differences"] == pytest.approx(differences)
    assert (seeds["ci_low"], seeds["ci_high"]) == pytest.approx((mean - half, mean + half))
    assert seeds["mcnemar_p"][0] == pytest.approx(mcnemar_exact_p(wrong, 0))
    report(str(tmp_path), data_dir=str(tmp_path / "no_data"), console=Console(file=io.StringIO()))
    text = (tmp_path / "report.md").read_text()
    bn = text[text.index("### Batch normalization and dropout") : text.index("### Training more VGG16 layers")]
    assert "cnn\\_bn\\_do − cnn over seeds 0, 1, each seed's two runs paired on the same test images:" in bn
    assert f"95% CI \\[{mean - half:+.4f}, {mean + half:+.4f}\\]" in bn
    verdict = "Supported." if second_seed_right else "Not shown: the difference's interval holds 0."
    assert f"**Verdict: {verdict}**" in bn


def test_a_pair_is_of_the_first_seed_both_models_have_and_a_seed_whose_predictions_cannot_be_read_is_left_out(
    logs, tmp_path
):
    run = logs / "mlp" / "version_0"
    for seed in (0, 1, 2, 3):
        filed_as(run, tmp_path, "cnn", version=seed, seed=seed)
    for seed in (1, 2, 3):
        filed_as(run, tmp_path, "cnn_bn_do", version=seed, seed=seed)
    filed_as(run, tmp_path, "cnn_bn_do", version=9, seed=1)  # a second run of seed 1: the first by name is used
    (tmp_path / "cnn_bn_do" / "version_2" / "evaluation" / "predictions.npz").write_bytes(b"not an npz")

    def compared() -> dict:
        compare(str(tmp_path), pair=["cnn_bn_do", "cnn"], console=Console(file=io.StringIO()))
        return json.loads((tmp_path / "comparison_pair.json").read_text())

    result = compared()
    assert (result["first_run"], result["second_run"]) == ("cnn_bn_do/version_1", "cnn/version_1")
    assert "the runs of seed 1, the first both have, compared" in result["note"]
    assert result["across_seeds"]["seeds"] == [1, 3] and result["across_seeds"]["left_out"] == [2]
    report(str(tmp_path), data_dir=str(tmp_path / "no_data"), console=Console(file=io.StringIO()))
    assert "; seed 2 left out: its predictions cannot be read" in (tmp_path / "report.md").read_text()
    shutil.rmtree(tmp_path / "cnn_bn_do" / "version_3")  # seed 1 alone can be paired: no comparison across seeds
    result = compared()
    assert result["across_seeds"] is None and result["second_run"] == "cnn/version_1"


def test_the_open_question_on_epochs_is_answered_from_runs_trained_past_their_recipe_kept_out_of_the_table(
    logs, tmp_path
):
    shutil.copytree(logs / "mlp", tmp_path / "mlp")
    report(str(tmp_path), data_dir=str(tmp_path / "no_data"), console=Console(file=io.StringIO()))
    assert "No run trained past its recipe's epochs in epochs\\_probes/" in (tmp_path / "report.md").read_text()
    probe = Path(shutil.copytree(logs / "mlp" / "version_0", tmp_path / "epochs_probes" / "vgg16_last3" / "seed0"))
    metrics = json.loads((probe / "evaluation" / "metrics.json").read_text())
    epochs = list(range(1, 41))  # validation accuracy rising by 0.005 an epoch, from 0.505 to 0.7
    metrics["model"], metrics["curves"]["val/acc"] = (
        "vgg16_last3",
        {"epoch": epochs, "value": [0.5 + 0.005 * e for e in epochs]},
    )
    (probe / "evaluation" / "metrics.json").write_text(json.dumps(metrics))
    broken = Path(shutil.copytree(probe, tmp_path / "epochs_probes" / "vgg16_last5" / "seed0")) / "evaluation"
    curves = {"val/acc": {"epoch": [1, 2], "value": [0.5, float("nan")]}}  # not a curve: left out, nothing fails
    (broken / "metrics.json").write_text(json.dumps(metrics | {"model": "vgg16_last5", "curves": curves}))
    report(str(tmp_path), data_dir=str(tmp_path / "no_data"), console=Console(file=io.StringIO()))
    text = (tmp_path / "report.md").read_text()
    chapter = text[text.index("More epochs: the study's open question") :]
    test = f"{metrics['splits']['test']['accuracy']:.4f}"
    # its recipe's 20 epochs (configs/vgg16_last3.yaml), the study's 30, its end and best, the test figure once
    row = f"| vgg16\\_last3 | 40 | 20 | 0.6000 | 30 | 0.6500 | 0.7000 | 0.7000 (epoch 40) | {test} |"
    assert f"{row} - | - |" in chapter  # no run of the recipe's own epochs to set beside it
    header = "| model | epochs trained | recipe's epochs | val acc then | study's epochs | val acc then |"
    assert header in chapter, "each column named for what its row holds"
    assert "report_files/epochs.png" in chapter and "vgg16\\_last5" not in chapter
    assert "vgg16\\_last3" not in text[text.index("Results and comparisons") : text.index("conclusions, checked")]

    ran_the_recipe = json.loads((logs / "mlp" / "version_0" / "evaluation" / "metrics.json").read_text())
    ended = (
        f"{ran_the_recipe['curves']['val/acc']['value'][-1]:.4f} | {ran_the_recipe['splits']['test']['accuracy']:.4f}"
    )

    def beside_the_probe(version: int, seed: int, epochs: int = 20) -> str:
        """File a table run of vgg16_last3 (the recipe's 20 epochs), report, and give the probe's row's end."""
        run = filed_as(logs / "mlp" / "version_0", tmp_path, "vgg16_last3", version=version, seed=seed)
        metrics_file = run / "evaluation" / "metrics.json"
        metrics_file.write_text(json.dumps(json.loads(metrics_file.read_text()) | {"epochs_trained": epochs}))
        report(str(tmp_path), data_dir=str(tmp_path / "no_data"), console=Console(file=io.StringIO()))
        chapter = (tmp_path / "report.md").read_text().split("More epochs: the study's open question")[1]
        return chapter[chapter.index(row) + len(row) :].split("\n")[0]

    assert beside_the_probe(0, seed=metrics["seed"] + 1) == " - | - |"  # another seed's run is no match
    assert beside_the_probe(1, seed=metrics["seed"], epochs=7) == " - | - |"  # nor a run of other epochs
    assert beside_the_probe(2, seed=metrics["seed"]) == f" {ended} |"  # the seed's run of the recipe's epochs
    assert beside_the_probe(3, seed=metrics["seed"]) == " - | - |"  # two such runs: which is not guessed


def test_runs_of_earlier_recipes_are_listed_as_history_never_in_the_table_and_not_through_a_link(logs, tmp_path):
    shutil.copytree(logs / "mlp", tmp_path / "mlp")
    report(str(tmp_path), data_dir=str(tmp_path / "no_data"), console=Console(file=io.StringIO()))
    before = (tmp_path / "report.md").read_text()
    assert "Earlier recipes (history)" not in before  # none kept: no section
    metrics = json.loads((logs / "mlp" / "version_0" / "evaluation" / "metrics.json").read_text())
    for seed, accuracy, epochs in ((0, 0.25, 18), (1, 0.5, 40)):  # two seeds, neither the mean nor the order
        run = Path(shutil.copytree(logs / "mlp" / "version_0", tmp_path / "superseded" / "mlp_hand" / f"seed{seed}"))
        metrics["splits"]["test"]["accuracy"], metrics["epochs_trained"] = accuracy, epochs
        (run / "evaluation" / "metrics.json").write_text(json.dumps(metrics))
    report(str(tmp_path), data_dir=str(tmp_path / "no_data"), console=Console(file=io.StringIO()))
    text = (tmp_path / "report.md").read_text()
    history = text[text.index("### Earlier recipes (history)") :]
    assert "| mlp\\_hand | mlp | 2 | 0.3750 | 18, 40 |" in history and "results/recipe\\_history.md" in history
    table = slice(text.index("Results and comparisons"), text.index("conclusions, checked"))
    assert text[table] == before[slice(before.index("Results and comparisons"), before.index("conclusions, checked"))]

    (tmp_path / "elsewhere").mkdir()
    shutil.move(tmp_path / "superseded", tmp_path / "elsewhere" / "superseded")
    (tmp_path / "superseded").symlink_to(tmp_path / "elsewhere" / "superseded")
    report(str(tmp_path), data_dir=str(tmp_path / "no_data"), console=Console(file=io.StringIO()))
    assert "Earlier recipes (history)" not in (tmp_path / "report.md").read_text()


def test_epochs_probes_reached_through_a_link_are_not_read(logs, tmp_path):
    probe = Path(shutil.copytree(logs / "mlp" / "version_0", tmp_path / "elsewhere" / "mlp" / "seed0"))
    metrics = json.loads((probe / "evaluation" / "metrics.json").read_text())
    metrics["curves"]["val/acc"] = {"epoch": [1, 2, 3], "value": [0.5, 0.6, 0.7]}
    (probe / "evaluation" / "metrics.json").write_text(json.dumps(metrics))
    shutil.copytree(logs / "mlp", tmp_path / "runs" / "mlp")
    (tmp_path / "runs" / "epochs_probes").symlink_to(tmp_path / "elsewhere")
    report(str(tmp_path / "runs"), console=Console(file=io.StringIO()))
    assert "No run trained past its recipe's epochs" in (tmp_path / "runs" / "report.md").read_text()


def test_what_is_missing_is_said_and_nothing_fails(logs, tmp_path):
    shutil.copytree(logs / "cnn", tmp_path / "cnn")
    (tmp_path / "cnn" / "version_0" / "config.yaml").unlink()
    report(str(tmp_path), data_dir=str(tmp_path / "no_data"), console=Console(file=io.StringIO()))
    text = (tmp_path / "report.md").read_text()
    assert "CIFAR-10 could not be read from" in text and "the recipe is unknown" in text
    assert "Images per class that the evaluated runs were evaluated on" in text


def test_a_config_listing_far_more_layers_than_it_rebuilds_is_not_rebuilt(logs, tmp_path):
    shutil.copytree(logs / "mlp", tmp_path / "mlp")
    config = tmp_path / "mlp" / "version_0" / "config.yaml"
    config.write_text(config.read_text().replace("hidden:", "hidden: [" + "1," * 100_000 + "1]\n    old_hidden:"))
    report(str(tmp_path), console=Console(file=io.StringIO()))
    assert (
        "config.yaml lists 100,001 entries, over the 1,000 this report rebuilds" in (tmp_path / "report.md").read_text()
    )


def test_a_config_whose_aliases_expand_past_any_real_one_is_left_out(logs, tmp_path):
    """Under 1 KB of YAML aliases, ten deep and ten wide, is ten billion values once a setting is printed."""
    shutil.copytree(logs / "mlp", tmp_path / "mlp")
    config = tmp_path / "mlp" / "version_0" / "config.yaml"
    config.write_text(ALIAS_CHAIN + config.read_text().replace("hidden:", "note: *a9\n    hidden:", 1))
    report(str(tmp_path), console=Console(file=io.StringIO()))
    assert "No readable config.yaml in mlp/version\\_0" in (tmp_path / "report.md").read_text()


def test_a_class_without_images_in_a_split_is_shown_without_a_rate(logs, tmp_path):
    """evaluate writes support 0 for a class a split lacks (a test batch without it passes the data checks)."""
    run = Path(shutil.copytree(logs / "mlp" / "version_0", tmp_path / "mlp" / "version_0"))
    metrics = json.loads((run / "evaluation" / "metrics.json").read_text())
    metrics["splits"]["test"]["per_class"]["cat"].update(correct=0, support=0)
    (run / "evaluation" / "metrics.json").write_text(json.dumps(metrics))
    report(str(tmp_path), console=Console(file=io.StringIO()))
    assert "| Test accuracy of cat | - | 27.50% (275/1000) | - |" in (tmp_path / "report.md").read_text()


def test_a_config_too_large_to_be_a_real_one_is_left_out_unparsed(logs, tmp_path):
    """A real config.yaml is ~5 KB; a 4 MB list of numbers took minutes to parse (read twice by a report)."""
    shutil.copytree(logs / "mlp", tmp_path / "mlp")
    config = tmp_path / "mlp" / "version_0" / "config.yaml"
    config.write_text(config.read_text().replace("hidden:", "hidden: [" + "1," * 2_000_000 + "1]\n    old_hidden:"))
    report(str(tmp_path), console=Console(file=io.StringIO()))
    assert "No readable config.yaml in mlp/version\\_0: the recipe is unknown." in (tmp_path / "report.md").read_text()


def test_a_figures_folder_that_is_a_link_is_refused_before_anything_is_written(logs, tmp_path, capsys):
    shutil.copytree(logs / "cnn", tmp_path / "runs" / "cnn")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "runs" / "report_files").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SystemExit) as stop:
        main(["report", str(tmp_path / "runs")])
    assert stop.value.code == 2 and "is a link: refusing to write through it" in capsys.readouterr().err
    assert not list((tmp_path / "elsewhere").iterdir()) and not (tmp_path / "runs" / "report.html").exists()


def test_runs_and_failure_markers_reached_through_a_linked_folder_are_not_read(logs, tmp_path):
    """A model folder linked elsewhere holds nothing the report may show: not its runs, not its failures."""
    shutil.copytree(logs / "mlp", tmp_path / "runs" / "mlp")
    shutil.copytree(logs / "cnn", tmp_path / "elsewhere" / "cnn")
    (tmp_path / "elsewhere" / "cnn" / "failed-seed7.json").write_text(json.dumps({"model": "planted"}))
    (tmp_path / "runs" / "cnn").symlink_to(tmp_path / "elsewhere" / "cnn")
    report(str(tmp_path / "runs"), console=Console(file=io.StringIO()))
    markdown = (tmp_path / "runs" / "report.md").read_text()
    assert "planted" not in markdown and "cnn/version" not in markdown


def test_a_folder_without_evaluated_runs_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["report", str(tmp_path)])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: no evaluated runs under") and error.count("\n") == 1


# --- a real browser ---------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The report itself holds no script: this page of the test's own opens it in a frame, then lists its images
# that did not load and every resource it fetched (Resource Timing: data: URIs are not fetches).
HARNESS = """<!DOCTYPE html><html><body><iframe id="f" src="report.html" width="1200" height="900"></iframe>
<script>
const frame = document.getElementById("f");
frame.addEventListener("load", () => setTimeout(() => {
  const doc = frame.contentDocument, images = Array.from(doc.images);
  const result = {images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80)),
    fetched: frame.contentWindow.performance.getEntriesByType("resource").map(e => e.name.slice(0, 80)),
    text: doc.body.innerText};
  const out = document.createElement("pre"); out.id = "result"; out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
}, 200));
</script></body></html>"""


def chromium(*arguments: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--allow-file-access-from-files",
        "--virtual-time-budget=10000",
    ]
    return subprocess.run([CHROMIUM, *flags, *arguments], capture_output=True, text=True, timeout=120)


def rendered(folder: Path) -> dict:
    (folder / "harness.html").write_text(HARNESS)
    dom = chromium("--dump-dom", (folder / "harness.html").as_uri()).stdout
    (result,) = re.findall(r'<pre id="result">(.*?)</pre>', dom, re.S)
    return json.loads(html.unescape(result))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium)")
def test_the_page_opens_in_a_real_browser_whole(logs, written, tmp_path):
    folder = Path(shutil.copytree(logs, tmp_path / "copy", ignore=shutil.ignore_patterns("report_files")))
    page = rendered(folder)
    assert page["images"] >= 16 and page["broken"] == [] and page["fetched"] == []
    for text in ("The data", "Results and comparisons", "The study's conclusions, checked", "Verdict:"):
        assert text in page["text"]
    assert re.search(r"precision +recall +f1-score +support\n", page["text"])  # a report shown line by line
    # the check sees a failure where there is one: a missing image and a fetch from outside
    (folder / "report.html").write_text(
        '<p>x</p><img src="missing.png"><link rel="stylesheet" href="https://x.invalid/a.css">'
    )
    control = rendered(folder)
    assert control["broken"] and control["fetched"]
    (folder / "report.html").write_text(written["html"])
    shot = folder / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,1600", (folder / "report.html").as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (1600, 1200) and (pixels < 128).mean() > 0.01 and pixels.std() > 10


def test_the_layers_rebuilt_are_bounded_by_the_code_not_by_a_count_from_the_same_run_folder():
    """A config.yaml listing 20,000 hidden layers beside a metrics.json claiming as many weight layers built
    them all (on meta, still seconds and memory per module): the bound is the code's own."""
    config = {"model": {"class_path": "cifar_bench.models.MLPClassifier", "init_args": {"hidden": [1] * 20_000}}}
    (block,) = layer_blocks(config, {"weight_layers": 20_001, "trainable_params": 0, "total_params": 0})
    assert "not shown: config.yaml lists 20,000 entries" in str(block)


def test_the_figures_folder_keeps_files_the_report_did_not_write_and_a_folder_in_a_figures_way_is_refused_first(
    logs, tmp_path, capsys
):
    """A folder named like a figure was a traceback after report.html, before report.md; the user's own
    PNGs in report_files/ were deleted as stale."""
    runs = tmp_path / "runs"
    shutil.copytree(logs / "cnn", runs / "cnn")
    report(str(runs), console=Console(file=io.StringIO()))
    figure = sorted((runs / "report_files").glob("*.png"))[0]
    (runs / "report_files" / "mine.png").write_bytes(b"my own figure")
    figure.unlink()
    figure.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["report", str(runs)])
    assert stop.value.code == 2 and f"{figure} is a folder" in capsys.readouterr().err
    assert snapshot(tmp_path) == before
    figure.rmdir()
    report(str(runs), console=Console(file=io.StringIO()))
    assert (runs / "report_files" / "mine.png").read_bytes() == b"my own figure" and figure.is_file()


# --- how the recipes were chosen: the sweeps beside the runs ------------------------------------------------
def swept(logs: Path, tmp_path: Path, study_name: str = "mlp") -> Path:
    """A copy of the runs with a sweep of mlp in ``sweep/mlp/``, written by the sweep's own writer from a real
    Optuna study: trial 1, the best, drew exactly the recipe the runs trained with."""
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from cifar_bench.sweep.outputs import write_outputs

    root = Path(shutil.copytree(logs, tmp_path / "runs", ignore=shutil.ignore_patterns("report*")))
    config = yaml.safe_load((root / "mlp" / "version_0" / "config.yaml").read_text())
    ran = {"model.lr": config["model"]["init_args"]["lr"], "trainer.max_epochs": config["trainer"]["max_epochs"]}
    space = {"model.lr": FloatDistribution(1e-4, 1.0, log=True), "trainer.max_epochs": IntDistribution(1, 9)}
    study = optuna.create_study(study_name=study_name, direction="maximize")
    for value, state, params in ((0.4, TrialState.COMPLETE, {"model.lr": 0.5, "trainer.max_epochs": 3}),
                                 (0.5, TrialState.COMPLETE, ran),
                                 (0.2, TrialState.PRUNED, {"model.lr": 0.9, "trainer.max_epochs": 9})):  # fmt: skip
        study.add_trial(create_trial(state=state, value=value, params=params, distributions=space,
                                     intermediate_values={1: value}))  # fmt: skip
    write_outputs(
        study,
        SimpleNamespace(described=lambda folder: "in memory"),
        root / "sweep" / "mlp",
        "mlp",
        root / "sweep" / "mlp",
    )
    return root


def test_the_recipes_chapter_shows_each_sweep_and_whether_the_runs_trained_its_best(logs, tmp_path):
    root = swept(logs, tmp_path)
    report(str(root), console=Console(file=io.StringIO()))
    markdown = (root / "report.md").read_text()
    chapter = markdown[markdown.index("## How the recipes were chosen") : markdown.index('<a id="model1">')]
    assert "never reads the test split" in chapter and "No sweep here for cnn, cnn\\_bn\\_do" in chapter
    assert "3 trials (2 complete, 1 pruned)" in chapter and "Best: trial 1, validation accuracy 0.5000" in chapter
    assert "2 of 2 evaluated runs trained with this recipe." in chapter  # the mlp's two seeds
    assert chapter.index("| 1 | complete | 0.5000") < chapter.index("| 0 | complete | 0.4000")  # best first
    assert (root / "report_files" / "sweep1_history.png").is_file()


def with_a_huge_field(trials: Path) -> None:
    header = trials.read_text().splitlines()[0]
    trials.write_text(f'{header}\n1,COMPLETE,0.5,1,"{"x" * 200_000}"\n')


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: (folder / "trials.csv").write_text("number,state\n1,COMPLETE\n"),
        lambda folder: (folder / "summary.json").write_text('{"trials": {"COMPLETE": -1}}'),
        lambda folder: (folder / "summary.json").write_text("[" * 100_000),
        lambda folder: (folder / "trials.csv").unlink(),
        lambda folder: with_a_huge_field(folder / "trials.csv"),
    ],
    ids=["other columns", "negative count", "nested too deep", "trials missing", "field over csv's limit"],
)
def test_a_damaged_sweep_is_left_out_with_why_and_the_report_is_written(logs, tmp_path, damage):
    root = swept(logs, tmp_path)
    damage(root / "sweep" / "mlp")
    report(str(root), console=Console(file=io.StringIO()))
    assert "Left out: " in (root / "report.md").read_text() and (root / "report.html").is_file()


@pytest.mark.parametrize("linked", ["sweep", "sweep/mlp", "sweep/mlp/summary.json", "sweep/mlp/trials.csv"])
def test_a_sweep_reached_through_a_link_is_not_read(logs, tmp_path, linked):
    root = swept(logs, tmp_path)
    shutil.move(root / linked, tmp_path / "elsewhere")
    (root / linked).symlink_to(tmp_path / "elsewhere")
    report(str(root), console=Console(file=io.StringIO()))
    assert "trials (2 complete, 1 pruned)" not in (root / "report.md").read_text()


def test_a_sweeps_names_reach_the_page_as_text(logs, tmp_path):
    root = swept(logs, tmp_path, study_name=EVIL)
    report(str(root), console=Console(file=io.StringIO()))
    page = (root / "report.html").read_text()
    assert "<img src=x" not in page and html.escape(EVIL, quote=False)[:20] in page
