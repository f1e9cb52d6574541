"""The CPU dropout drawing its mask in one vectorised draw behaves as nn.Dropout does."""

import pytest
import torch

from cifar_bench.models.networks import VGG16, ConvNet9
from cifar_bench.models.networks.dropout import VectorisedDropout


def test_training_keeps_each_unit_with_probability_one_minus_p_and_scales_the_kept_ones():
    torch.manual_seed(0)
    dropout = VectorisedDropout(0.3).train()
    out = dropout(torch.ones(400, 1000))
    kept = out != 0
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.005)
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.7))


def test_gradients_flow_through_kept_units_only_scaled_alike():
    dropout = VectorisedDropout(0.5).train()
    x = torch.randn(64, 256, dtype=torch.bfloat16, requires_grad=True)
    out = dropout(x)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(x.grad, torch.where(out != 0, 2.0, 0.0).to(torch.bfloat16))


def test_in_eval_mode_and_at_p_zero_it_is_the_identity_and_at_p_one_it_zeroes():
    x = torch.randn(8, 16)
    assert torch.equal(VectorisedDropout(0.5).eval()(x), x)
    assert torch.equal(VectorisedDropout(0.0).train()(x), x)
    assert torch.equal(VectorisedDropout(1.0).train()(x), torch.zeros_like(x))


def test_the_networks_use_it_for_every_dropout():
    for net in (VGG16(fold_fc6=True), ConvNet9(batch_norm=True, dropout=0.2)):
        dropouts = [module for module in net.modules() if isinstance(module, torch.nn.Dropout)]
        assert dropouts and all(type(module) is VectorisedDropout for module in dropouts)
