"""VGG16Classifier: which layers train and where its weights come from (the feature store: test_feature_store)."""

from __future__ import annotations

import hashlib
import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import with_random_weights
from torchvision.models import VGG16_Weights, resnet18, vgg16

from cifar_bench.errors import CifarBenchError
from cifar_bench.models import VGG16Classifier
from cifar_bench.models.networks import VGG16, load_vgg16_weights

# The conv-only ImageNet weights file, where the machine has one (.ci/run sets it).
IMAGENET_FEATURES = os.environ.get("VGG16_WEIGHTS")
FC_LAYERS = ["fc6", "fc7", "fc8"]
CONV_LAYERS = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)]


def parameter_names(*prefixes: str) -> set[str]:
    return {f"net.{prefix}.{kind}" for prefix in prefixes for kind in ("weight", "bias")}


# conv5_2 and conv5_3 are features.26 and features.28; fc6, fc7, fc8 are classifier.0, .3 and .6.
TRAINED = {
    2: parameter_names("classifier.3", "classifier.6"),
    3: parameter_names("classifier.0", "classifier.3", "classifier.6"),
    5: parameter_names("features.26", "features.28", "classifier.0", "classifier.3", "classifier.6"),
}


@pytest.fixture(scope="module", params=sorted(TRAINED), ids=lambda n: f"last{n}")
def vgg(request) -> VGG16Classifier:
    """One model per study variant, on the meta device (which layers train, not their weights), constant
    schedule so no Trainer is needed."""
    with torch.device("meta"):
        return VGG16Classifier(trainable_layers=request.param, weights="none", lr_schedule="constant")


def test_only_the_last_n_weight_layers_are_trainable(vgg):
    trainable = {name for name, p in vgg.named_parameters() if p.requires_grad}
    assert trainable == TRAINED[vgg.hparams.trainable_layers]
    counted, total = vgg.parameter_counts()
    assert counted == sum(p.numel() for name, p in vgg.named_parameters() if name in trainable)
    assert total == sum(p.numel() for p in vgg.parameters())


def test_frozen_parameters_are_left_out_of_the_optimizer(vgg):
    optimizer = vgg.configure_optimizers()
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    names = {name for name, p in vgg.named_parameters() if id(p) in optimised}
    assert names == TRAINED[vgg.hparams.trainable_layers]


def test_a_backward_pass_gives_gradients_to_trained_layers_only(vgg):
    vgg.zero_grad(set_to_none=True)
    vgg.train()
    logits = vgg(torch.randn(2, 3, 32, 32, device=vgg.device))
    F.cross_entropy(logits, torch.tensor([1, 7], device=vgg.device)).backward()
    with_grad = {name for name, p in vgg.named_parameters() if p.grad is not None}
    assert with_grad == TRAINED[vgg.hparams.trainable_layers]
    vgg.zero_grad(set_to_none=True)


def test_frozen_prefix_stays_in_eval_mode_while_the_dropout_before_trained_layers_trains(vgg):
    vgg.train()
    prefix, tail = vgg.net.layers[: vgg.prefix_end], vgg.net.layers[vgg.prefix_end :]
    assert not any(layer.training for layer in prefix)
    dropouts = [layer for layer in tail if isinstance(layer, torch.nn.Dropout)]
    assert dropouts and all(layer.training for layer in dropouts)


def test_trainable_layers_outside_one_to_sixteen_is_a_clear_error():
    with (
        pytest.raises(CifarBenchError, match=r"trainable_layers=0 is out of range \(int restricted to be ≥1 and ≤16\)"),
        torch.device("meta"),
    ):
        VGG16Classifier(trainable_layers=0, weights="none")


# --- weights ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> VGG16:
    """A VGG16 with recognisable (seeded) weights whose state dict the files below are cut from."""
    with torch.device("meta"):
        net = VGG16()
    return with_random_weights(net, seed=1)


@pytest.fixture(scope="module")
def target() -> VGG16:
    with torch.device("meta"):
        net = VGG16()
    return with_random_weights(net, seed=2)


def same_layer(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


def test_a_full_state_dict_makes_every_layer_pretrained(reference, target, tmp_path):
    path = tmp_path / "vgg16_full.pth"
    torch.save(reference.state_dict(), path)
    pretrained, random, *_ = load_vgg16_weights(target, str(path))
    assert (len(pretrained), random) == (16, [])
    assert all(
        same_layer(a, b) for (_, a), (_, b) in zip(reference.named_weight_layers(), target.named_weight_layers())
    )


def test_an_imagenet_head_is_replaced_by_a_random_ten_way_fc8(reference, target, tmp_path):
    state = reference.state_dict()
    state["classifier.6.weight"], state["classifier.6.bias"] = torch.zeros(1000, 4096), torch.zeros(1000)
    path = tmp_path / "vgg16_imagenet_head.pth"
    torch.save(state, path)
    pretrained, random, *_ = load_vgg16_weights(target, str(path))
    assert random == ["fc8"] and len(pretrained) == 15
    assert target.classifier[6].weight.shape == (10, 4096)


def conv_only_cut(reference: VGG16, folder: Path) -> Path:
    path = folder / "vgg16_features.pth"
    torch.save({k: v for k, v in reference.state_dict().items() if k.startswith("features.")}, path)
    return path


def imagenet_features(reference: VGG16, folder: Path) -> Path:
    if not IMAGENET_FEATURES:
        pytest.skip("set VGG16_WEIGHTS to the conv-only ImageNet weights file to run this")
    return Path(IMAGENET_FEATURES)


@pytest.mark.parametrize(
    "conv_only_file", [conv_only_cut, imagenet_features], ids=["cut of a full file", "VGG16_WEIGHTS"]
)
def test_a_conv_only_file_loads_thirteen_layers_and_reports_fc6_to_fc8_as_random(
    reference, tmp_path, monkeypatch, conv_only_file
):
    path = conv_only_file(reference, tmp_path)
    expected = torch.load(path, weights_only=True)
    messages: list[str] = []
    # Lightning's rank-zero logger may stop propagating to pytest's handler, depending on test order.
    monkeypatch.setattr("cifar_bench.models.vgg16.rank_zero_info", messages.append)
    model = VGG16Classifier(trainable_layers=3, weights=str(path))
    assert model.random_layers == FC_LAYERS
    assert model.pretrained_layers == CONV_LAYERS
    assert model.weights_record()["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert torch.equal(model.net.features[28].weight, expected["features.28.weight"])
    assert any("random init fc6, fc7, fc8" in message for message in messages)


def test_without_weights_to_load_nothing_is_said_about_their_origin(monkeypatch):
    """evaluate and predict build with weights 'none' before loading a checkpoint: no 'random init' line for them."""
    messages: list[str] = []
    monkeypatch.setattr("cifar_bench.models.vgg16.rank_zero_info", messages.append)
    with torch.device("meta"):
        VGG16Classifier(trainable_layers=3, weights="none")
    assert messages == []


def resnet_file(folder: Path) -> Path:
    path = folder / "resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    return path


def mismatched_file(folder: Path) -> Path:
    path = folder / "vgg16_wrong_shape.pth"
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3), "features.0.bias": torch.zeros(64)}, path)
    return path


def non_tensor_file(folder: Path) -> Path:
    path = folder / "not_tensors.pth"
    torch.save({"features.0.weight": [1.0, 2.0]}, path)
    return path


class Payload:
    """An arbitrary pickled object: weights_only loading must refuse to build it."""


def pickled_object_file(folder: Path) -> Path:
    path = folder / "object.pth"
    torch.save(Payload(), path)
    return path


def garbage_file(folder: Path) -> Path:
    path = folder / "garbage.pth"
    path.write_bytes(b"\x00this is not a checkpoint\xff" * 10)
    return path


@pytest.mark.parametrize(
    ("make_file", "message"),
    [
        (resnet_file, "not a torchvision VGG16 state dict"),
        (mismatched_file, r"features.0.weight has shape \(64, 1, 3, 3\)"),
        (non_tensor_file, "does not hold a state dict of tensors"),
        (pickled_object_file, "is not a loadable state dict"),
        (garbage_file, "is not a loadable state dict"),
    ],
    ids=["resnet18", "mismatched_shape", "non_tensor_values", "pickled_object", "garbage_bytes"],
)
def test_a_file_that_is_not_vgg16_weights_is_a_clear_error(target, tmp_path, make_file, message):
    with pytest.raises(CifarBenchError, match=message):
        load_vgg16_weights(target, str(make_file(tmp_path)))


def test_a_missing_weights_file_is_a_clear_error(target, tmp_path):
    with pytest.raises(
        CifarBenchError, match=r"neither a word \('imagenet', 'imagenet_conv', 'none'\) nor an existing file"
    ):
        load_vgg16_weights(target, str(tmp_path / "absent.pth"))


def test_imagenet_weights_offline_ask_for_a_local_file(target, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(VGG16_Weights, "get_state_dict", offline)
    with pytest.raises(CifarBenchError, match="--model.weights PATH"):
        load_vgg16_weights(target, "imagenet")


# --- what a run says it started from, and its size as the study counts it ---------------------------------


def test_the_weights_file_is_recorded_by_its_name_and_digest_with_the_layers_it_left_random(reference, tmp_path):
    path = conv_only_cut(reference, tmp_path)
    model = VGG16Classifier(trainable_layers=2, weights=str(path))
    assert model.weights_record() == {
        "file": "vgg16_features.pth",  # never the folder it was read from
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "pretrained_layers": CONV_LAYERS,
        "random_layers": FC_LAYERS,
        "trained_layers": ["fc7", "fc8"],  # fc6 frozen random
    }


def torchvision_cache(reference: VGG16, folder: Path, monkeypatch) -> Path:
    """torch's cache holding a stand-in for torchvision's IMAGENET1K_V1 file (its 1000-way fc8), as the weights
    API reads it."""
    state = reference.state_dict()
    state["classifier.6.weight"], state["classifier.6.bias"] = torch.zeros(1000, 4096), torch.zeros(1000)
    path = folder / "checkpoints" / "vgg16-397923af.pth"
    path.parent.mkdir()
    torch.save(state, path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(folder))
    monkeypatch.setattr(VGG16_Weights, "get_state_dict", lambda *args, **kwargs: torch.load(path, weights_only=True))
    return path


@pytest.mark.parametrize(
    ("word", "pretrained", "random"),
    [("imagenet", CONV_LAYERS + ["fc6", "fc7"], ["fc8"]), ("imagenet_conv", CONV_LAYERS, FC_LAYERS)],
)
def test_imagenet_is_torchvisions_every_layer_and_imagenet_conv_its_conv_layers_only(
    reference, target, tmp_path, monkeypatch, word, pretrained, random
):
    path = torchvision_cache(reference, tmp_path, monkeypatch)
    origin = load_vgg16_weights(target, word)
    assert (origin.pretrained, origin.random) == (pretrained, random)
    assert (origin.file, origin.sha256) == (path.name, hashlib.sha256(path.read_bytes()).hexdigest())
    assert same_layer(target.features[28], reference.features[28])


@pytest.mark.parametrize("fold_fc6", [True, False])
def test_parameters_as_the_study_counts_them_are_torchvisions_vgg16_with_ten_classes(vgg, fold_fc6):
    with torch.device("meta"):
        model = VGG16Classifier(trainable_layers=vgg.hparams.trainable_layers, weights="none", fold_fc6=fold_fc6)
        unfolded = VGG16Classifier(trainable_layers=vgg.hparams.trainable_layers, weights="none", fold_fc6=False)
        torchvision_total = sum(p.numel() for p in vgg16(num_classes=10).parameters())
    assert model.study_parameter_counts() == unfolded.parameter_counts()
    assert model.study_parameter_counts()[1] == torchvision_total == 134_301_514
    assert vgg.parameter_counts()[1] == 33_638_218  # as built: fc6 folded
