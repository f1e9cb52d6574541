"""The 3x3 convolution that runs as one matrix product on 2x2 maps computes what nn.Conv2d computes."""

import pytest
import torch
from torch import nn

from cifar_bench.models.networks import VGG16
from cifar_bench.models.networks.small_map_conv import SmallMapConv2d, small_map_convolutions


def twin_convolutions(channels_last: bool, bias: bool = True) -> tuple[nn.Conv2d, SmallMapConv2d]:
    torch.manual_seed(0)
    reference = nn.Conv2d(24, 16, 3, padding=1, bias=bias)
    ours = small_map_convolutions(nn.Sequential(nn.Conv2d(24, 16, 3, padding=1, bias=bias)))[0]
    ours.load_state_dict(reference.state_dict())
    if channels_last:
        reference.to(memory_format=torch.channels_last)
        ours.to(memory_format=torch.channels_last)
    return reference, ours


@pytest.mark.parametrize("channels_last", [False, True], ids=["NCHW", "channels_last"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
def test_on_2x2_maps_outputs_and_every_gradient_match_the_convolution(channels_last, bias):
    reference, ours = twin_convolutions(channels_last, bias)
    images = torch.randn(5, 24, 2, 2)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    inputs = [images.clone().requires_grad_(), images.clone().requires_grad_()]
    outputs = [reference(inputs[0]), ours(inputs[1])]
    torch.testing.assert_close(outputs[1], outputs[0])
    upstream = torch.randn_like(outputs[0])
    for output in outputs:
        output.backward(upstream)
    torch.testing.assert_close(inputs[1].grad, inputs[0].grad)
    for theirs, mine in zip(reference.parameters(), ours.parameters()):
        torch.testing.assert_close(mine.grad, theirs.grad)


def test_under_bf16_autocast_it_computes_in_bf16_as_the_convolution_does():
    reference, ours = twin_convolutions(channels_last=True)
    images = torch.randn(5, 24, 2, 2).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = reference(images), ours(images)
    assert got.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), atol=0.05, rtol=0.02)


def test_other_map_sizes_run_the_ordinary_convolution():
    reference, ours = twin_convolutions(channels_last=False)
    for size in (1, 3, 4, 8):
        images = torch.randn(2, 24, size, size)
        torch.testing.assert_close(ours(images), reference(images))


def test_a_frozen_layer_keeps_its_matrix_until_its_weight_changes():
    reference, ours = twin_convolutions(channels_last=False)
    ours.requires_grad_(False)
    images = torch.randn(3, 24, 2, 2)
    ours(images)
    assert ours.dense_matrix("cpu") is ours.dense_matrix("cpu")
    changed = {name: value + 1 for name, value in reference.state_dict().items()}
    reference.load_state_dict(changed)
    ours.load_state_dict(changed)
    torch.testing.assert_close(ours(images), reference(images))


def test_vgg16_runs_its_3x3_convolutions_this_way_with_torchvisions_state_dict_keys():
    net = VGG16(fold_fc6=True)
    convolutions = [layer for layer in net.features if isinstance(layer, nn.Conv2d)]
    assert len(convolutions) == 13 and all(type(layer) is SmallMapConv2d for layer in convolutions)
    assert "features.28.weight" in net.state_dict()


@pytest.mark.parametrize("fused", [False, True], ids=["for-loop SGD", "fused SGD"])
def test_a_layer_trained_between_two_frozen_spells_computes_with_its_trained_weight(fused):
    """Fused optimizers leave the weight's version as it was: the matrix of the first frozen spell must not come back."""
    reference, ours = twin_convolutions(channels_last=False)
    images = torch.randn(3, 24, 2, 2)
    for layer in (reference, ours):
        layer.requires_grad_(False)
        layer(images)
        layer.requires_grad_(True)
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.1, fused=fused)
        layer(images).sum().backward()
        optimizer.step()
        layer.requires_grad_(False)
    torch.testing.assert_close(ours(images), reference(images))
