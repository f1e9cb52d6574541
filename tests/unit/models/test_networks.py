"""The plain networks: input and output shapes, and the weight-layer counts the study names."""

from __future__ import annotations

import pytest
import torch
from conftest import with_random_weights
from torch import nn

from cifar_bench.models.base import count_weight_layers
from cifar_bench.models.networks import MLP, VGG16, WEIGHT_LAYER_NAMES, ConvNet9

NETWORKS = {
    "mlp": (lambda: MLP(), 3),
    "cnn": (lambda: ConvNet9(batch_norm=False, dropout=0.0), 9),
    "cnn_bn_do": (lambda: ConvNet9(batch_norm=True, dropout=0.25), 9),
}


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("training", [True, False], ids=["train_mode", "eval_mode"])
def test_small_networks_map_a_cifar_batch_to_ten_logits_per_image(name, training):
    build, _ = NETWORKS[name]
    net = build().train(training)
    assert net(torch.randn(3, 3, 32, 32)).shape == (3, 10)


@pytest.mark.parametrize("name", NETWORKS)
def test_small_networks_have_the_studys_weight_layer_counts(name):
    build, expected = NETWORKS[name]
    assert count_weight_layers(build()) == expected


def weight_shapes(net: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(m.weight.shape) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def test_cnn_variants_share_their_weight_layers_and_differ_only_by_batchnorm_and_dropout():
    plain, regularised = ConvNet9(), ConvNet9(batch_norm=True, dropout=0.25)
    assert weight_shapes(plain) == weight_shapes(regularised)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert all(m.p == 0 for m in plain.modules() if isinstance(m, nn.Dropout))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in regularised.modules()) == 6
    assert any(isinstance(m, nn.Dropout) and m.p == 0.25 for m in regularised.modules())


def test_vgg16_has_sixteen_named_weight_layers_and_a_ten_way_head():
    with torch.device("meta"):  # shapes only
        net = VGG16().eval()
    layers = net.named_weight_layers()
    assert [name for name, _ in layers] == list(WEIGHT_LAYER_NAMES)
    assert count_weight_layers(net) == 16
    assert sum(isinstance(m, nn.Conv2d) for _, m in layers) == 13
    assert layers[-1][1].out_features == 10
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32, device="meta")).shape == (2, 10)


def test_vgg16_split_at_any_point_computes_the_same_logits_as_the_whole_network():
    with torch.device("meta"):
        net = VGG16()
    net = with_random_weights(net).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        whole = net(images)
        for frozen in (11, 13, 14):
            split = net.prefix_length(frozen)
            assert torch.allclose(net.run(net.run(images, 0, split), split), whole, atol=1e-5)
