"""The training recipes: an initialisation that lets every layer learn from the first step, a
learning-rate warm-up, label smoothing, and learning rates for pretrained VGG16 layers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cifar_bench.models import CNNClassifier, MLPClassifier, VGG16Classifier
from cifar_bench.models import vgg16 as vgg16_model
from cifar_bench.models.networks import MLP, ConvNet9
from cifar_bench.models.networks.vgg16 import FC6_COPIES, WEIGHT_LAYER_NAMES, WeightsOrigin

WEIGHT_DECAY = 5e-4  # the configs' default: its pull on a weight, relative to the weight, per unit lr


def relative_gradients(net: nn.Module) -> list[float]:
    """||grad|| / ||weight|| of each weight layer after one backward pass on a random batch."""
    torch.manual_seed(0)
    F.cross_entropy(net(torch.randn(64, 3, 32, 32)), torch.randint(0, 10, (64,))).backward()
    return [
        (m.weight.grad.norm() / m.weight.norm()).item() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]


@pytest.mark.parametrize(
    "build", [ConvNet9, lambda: ConvNet9(batch_norm=True, dropout=0.25), MLP], ids=["cnn", "cnn_bn_do", "mlp"]
)
def test_every_layer_starts_with_a_gradient_well_above_the_weight_decays_pull(build):
    torch.manual_seed(0)
    assert min(relative_gradients(build())) > 4 * WEIGHT_DECAY


def test_the_plain_cnns_convolutions_learn_at_the_pace_of_its_hidden_linear_layers():
    torch.manual_seed(0)
    gradients = relative_gradients(ConvNet9())
    convolutions, hidden = gradients[:6], gradients[6:8]
    assert max(hidden) / min(convolutions) < 10 and max(convolutions) / min(hidden) < 10


def learning_rates(model, steps: int, max_epochs: int) -> list[float]:
    """The first group's learning rate at every step of a run of ``steps`` optimizer steps."""
    model._trainer = SimpleNamespace(estimated_stepping_batches=steps, max_epochs=max_epochs)
    configured = model.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_warm_up_ramps_the_learning_rate_linearly_then_the_cosine_takes_it_to_zero():
    rates = learning_rates(MLPClassifier(lr=0.1, warmup_epochs=1), steps=40, max_epochs=4)
    assert rates[0] == pytest.approx(0.1 / 10)  # one warm-up epoch of 10 steps starts at a tenth
    steps = [later - earlier for earlier, later in zip(rates[:10], rates[1:11])]
    assert steps == pytest.approx([steps[0]] * 10) and rates[10] == pytest.approx(0.1)
    assert rates[25] == pytest.approx(0.05 * (1 + math.cos(math.pi * 15 / 30)))
    assert rates[-1] < 0.001


def test_without_warm_up_the_cosine_starts_at_the_peak():
    assert learning_rates(MLPClassifier(lr=0.1), steps=40, max_epochs=4)[0] == pytest.approx(0.1)


def test_a_constant_rate_whose_warm_up_rounds_to_no_step_runs_without_a_schedule():
    model = MLPClassifier(lr=0.1, lr_schedule="constant", warmup_epochs=0.01)
    model._trainer = SimpleNamespace(estimated_stepping_batches=20, max_epochs=1)
    configured = model.configure_optimizers()
    assert isinstance(configured, torch.optim.Optimizer) and configured.param_groups[0]["lr"] == 0.1


def test_label_smoothing_applies_to_training_losses_only():
    model = CNNClassifier(widths=(4, 8, 8), hidden=(16, 16), label_smoothing=0.1).eval()
    batch = (torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]), torch.arange(4))
    with torch.no_grad():
        logits = model(batch[0])
        trained, validated = model._shared_step(batch, "train"), model._shared_step(batch, "val")
    assert trained == pytest.approx(F.cross_entropy(logits, batch[1], label_smoothing=0.1).item())
    assert validated == pytest.approx(F.cross_entropy(logits, batch[1]).item())


def vgg_loaded_with(monkeypatch, pretrained: list[str], device: str = "meta", **options) -> VGG16Classifier:
    """VGG16 whose weights loader reports ``pretrained`` as loaded (the rest random), without a file; on the
    meta device (shapes and optimizer groups only) unless the weights' values are wanted."""
    random = [name for name in WEIGHT_LAYER_NAMES if name not in pretrained]
    monkeypatch.setattr(vgg16_model, "load_vgg16_weights", lambda net, source: WeightsOrigin(list(pretrained), random))
    with torch.device(device):
        return VGG16Classifier(weights="a file", lr_schedule="constant", **options)


def groups_by_layer(model: VGG16Classifier) -> dict[str, dict]:
    optimizer = model.configure_optimizers()
    names = {id(p): name for name, layer in model.net.named_weight_layers() for p in layer.parameters()}
    return {names[id(p)]: group for group in optimizer.param_groups for p in group["params"]}


def test_trained_pretrained_layers_learn_at_their_scale_and_random_ones_at_the_full_rate(monkeypatch):
    model = vgg_loaded_with(
        monkeypatch, list(WEIGHT_LAYER_NAMES[:13]), trainable_layers=5, lr=0.01, pretrained_lr_scale=0.1
    )
    groups = groups_by_layer(model)
    assert set(groups) == {"conv5_2", "conv5_3", "fc6", "fc7", "fc8"}
    assert {name: group["lr"] for name, group in groups.items()} == pytest.approx(
        {"conv5_2": 0.001, "conv5_3": 0.001, "fc6": 0.01, "fc7": 0.01, "fc8": 0.01}
    )
    assert all(group["weight_decay"] == pytest.approx(5e-4) for group in groups.values())


def test_a_random_fc6_is_folded_as_a_fresh_layer_and_gets_no_x49_rule(monkeypatch):
    model = vgg_loaded_with(monkeypatch, list(WEIGHT_LAYER_NAMES[:13]), "cpu", trainable_layers=3, lr=0.01)
    fc6 = model.net.classifier[0].weight
    assert fc6.std().item() == pytest.approx(
        math.sqrt(2 / 512), rel=0.05
    )  # He init for 512 inputs, not a sum of 49 blocks
    assert groups_by_layer(model)["fc6"]["lr"] == pytest.approx(0.01)


def test_a_pretrained_fc6_keeps_the_x49_rule_at_its_pretrained_scale(monkeypatch):
    model = vgg_loaded_with(
        monkeypatch, list(WEIGHT_LAYER_NAMES[:15]), trainable_layers=3, lr=0.01, pretrained_lr_scale=0.5
    )
    groups = groups_by_layer(model)
    assert groups["fc6"]["lr"] == pytest.approx(0.01 * 0.5 * FC6_COPIES)
    assert groups["fc6"]["weight_decay"] == pytest.approx(5e-4 / FC6_COPIES)
    assert groups["fc7"]["lr"] == pytest.approx(0.005) and groups["fc8"]["lr"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    "options", [{"warmup_epochs": -1}, {"label_smoothing": 1.0}], ids=["negative-warmup", "smoothing-1"]
)
def test_impossible_recipe_settings_are_clear_errors(options):
    from cifar_bench.errors import CifarBenchError

    with pytest.raises(CifarBenchError):
        MLPClassifier(**options)
