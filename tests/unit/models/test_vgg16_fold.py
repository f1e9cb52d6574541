"""Folding VGG16's pooling + fc6 at 32x32: the same function, and under SGD/AdamW the same training trajectory."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from cifar_bench.models import VGG16Classifier
from cifar_bench.models.base import CifarClassifier
from cifar_bench.models.networks.vgg16 import FC6_COPIES, WEIGHT_LAYER_NAMES, folded_fc6_weight, load_vgg16_state


@pytest.fixture(scope="module")
def unfolded() -> VGG16Classifier:
    """fc6, fc7 and fc8 trained; float64, so that rounding (which Adam's normalisation amplifies for
    near-zero gradients) stays far below the tolerances: any difference left is the fold's."""
    torch.manual_seed(0)
    model = VGG16Classifier(trainable_layers=3, weights="none", fold_fc6=False, lr_schedule="constant").double()
    model.pretrained_layers = list(WEIGHT_LAYER_NAMES)  # as if loaded: the x49 rule keeps a pretrained fc6's trajectory
    return model


def vgg(unfolded: VGG16Classifier, fold: bool, **hparams) -> VGG16Classifier:
    """The same network, folded (a folded model loading the float64 weights) or a copy, with these optimizer settings."""
    if fold:
        model = VGG16Classifier(trainable_layers=3, weights="none", lr_schedule="constant").double()
        assert load_vgg16_state(model.net, unfolded.net.state_dict(), "the unfolded model") == (
            list(WEIGHT_LAYER_NAMES),
            [],
        )
        model.pretrained_layers = unfolded.pretrained_layers
    else:
        model = copy.deepcopy(unfolded)
    model.hparams.update(hparams)
    return model


def images(count: int = 2) -> torch.Tensor:
    return torch.randn(count, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def feature_batches(count: int, size: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """What the frozen convolutions hand on at 32x32: ReLU'd (N, 512, 1, 1) maps, and labels."""
    generator = torch.Generator().manual_seed(2)
    return [
        (
            torch.randn(size, 512, 1, 1, generator=generator, dtype=torch.float64).relu(),
            torch.randint(0, 10, (size,), generator=generator),
        )
        for _ in range(count)
    ]


def tail(model: VGG16Classifier, features: torch.Tensor) -> torch.Tensor:
    """Pooling (or not), fc6, fc7, fc8: the part of the network the fold changes."""
    return model.net.run(features, len(model.net.features))


def train(model: VGG16Classifier, data) -> None:
    """A few optimizer steps in eval mode, so that Dropout draws no random masks."""
    optimizer = model.configure_optimizers()
    model.eval()
    for features, labels in data:
        optimizer.zero_grad()
        F.cross_entropy(tail(model, features), labels).backward()
        optimizer.step()


def folded_weight(model: VGG16Classifier) -> torch.Tensor:
    weight = model.net.classifier[0].weight.detach()
    return weight if model.net.fc6_folded else folded_fc6_weight(weight)


def test_folded_fc6_is_a_512_to_4096_layer_computing_the_same_logits(unfolded):
    plain, folded = unfolded.eval(), vgg(unfolded, True).eval()
    assert tuple(folded.net.classifier[0].weight.shape) == (4096, 512)
    assert plain.parameter_counts()[1] - folded.parameter_counts()[1] == 4096 * 512 * (FC6_COPIES - 1)
    with torch.no_grad():
        torch.testing.assert_close(folded(images()), plain(images()), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_training_a_folded_fc6_follows_the_unfolded_trajectory(unfolded, optimizer):
    options = {
        "optimizer": optimizer,
        "lr": 0.05 if optimizer == "sgd" else 1e-3,
        "momentum": 0.9,
        "weight_decay": 5e-3,
    }
    plain, folded = vgg(unfolded, False, **options), vgg(unfolded, True, **options)
    start = folded_weight(folded).clone()
    data = feature_batches(3)
    train(plain, data[:2])
    train(folded, data[:2])
    assert (folded_weight(folded) - start).abs().max() > 1e-3  # fc6 really moved
    torch.testing.assert_close(folded_weight(folded), folded_weight(plain), rtol=1e-9, atol=1e-10)
    with torch.no_grad():
        torch.testing.assert_close(tail(folded, data[2][0]), tail(plain, data[2][0]), rtol=1e-9, atol=1e-12)


def test_without_its_own_learning_rate_and_weight_decay_a_folded_fc6_trains_differently(unfolded):
    plain, folded = vgg(unfolded, False, lr=0.05, weight_decay=5e-3), vgg(unfolded, True, lr=0.05, weight_decay=5e-3)
    folded.parameter_groups = lambda: CifarClassifier.parameter_groups(folded)
    data = feature_batches(1)
    train(plain, data)
    train(folded, data)
    assert not torch.allclose(folded_weight(folded), folded_weight(plain), rtol=1e-3, atol=1e-6)


def test_a_frozen_folded_fc6_gets_no_optimizer_group():
    with torch.device("meta"):  # which parameters, not their values
        model = VGG16Classifier(trainable_layers=2, weights="none", lr_schedule="constant")
    groups = model.configure_optimizers().param_groups
    assert len(groups) == 1
    assert not any(p is model.net.classifier[0].weight for p in groups[0]["params"])


def test_a_folded_model_builds_no_unfolded_fc6_and_folds_pretrained_fc6_weights_as_they_load(tmp_path):
    fc6 = torch.arange(25088.0).repeat(4096, 1)
    torch.save({"classifier.0.weight": fc6, "classifier.0.bias": torch.ones(4096)}, tmp_path / "fc6.pth")
    model = VGG16Classifier(trainable_layers=2, weights=str(tmp_path / "fc6.pth"))
    assert model.pretrained_layers == ["fc6"]
    assert not any(p.numel() >= 25088 * 4096 for p in model.parameters())
    expected = torch.arange(25088.0).view(512, FC6_COPIES).sum(-1)
    torch.testing.assert_close(model.net.classifier[0].weight[0], expected)
    torch.testing.assert_close(model.net.classifier[0].bias, torch.ones(4096))
