"""The MLP built from the model config."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnist_cli.config import ModelConfig
from mnist_cli.model import build_model, count_parameters


def test_depth_zero_is_linear_softmax():
    model = build_model(ModelConfig(depth=0), 784, 10)
    assert count_parameters(model) == 784 * 10 + 10


def test_classic_256_has_the_tutorial_parameter_count():
    model = build_model(ModelConfig(depth=1, width=256), 784, 10)
    assert count_parameters(model) == 784 * 256 + 256 + 256 * 10 + 10


def test_per_layer_widths_and_output_shape():
    model = build_model(ModelConfig(depth=3, width=[64, 32, 16]), 784, 10)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 64), (64, 32), (32, 16), (16, 10)]
    assert model(torch.zeros(5, 28, 28)).shape == (5, 10)


@pytest.mark.parametrize(("norm", "layer"), [("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm)])
def test_norm_layers(norm, layer):
    model = build_model(ModelConfig(depth=2, width=8, norm=norm), 784, 10)
    assert sum(isinstance(m, layer) for m in model) == 2


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu", "tanh", "sigmoid"])
def test_activations(activation):
    model = build_model(ModelConfig(depth=1, width=8, activation=activation, dropout=0.1), 784, 10)
    assert sum(isinstance(m, nn.Dropout) for m in model) == 1
    assert torch.isfinite(model(torch.randn(3, 784))).all()


def test_xavier_and_kaiming_zero_the_biases_and_change_weights():
    torch.manual_seed(0)
    default = build_model(ModelConfig(depth=1, width=256), 784, 10)
    for init in ("xavier", "kaiming"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(depth=1, width=256, init=init), 784, 10)
        assert torch.count_nonzero(model[1].bias) == 0
        assert not torch.equal(model[1].weight, default[1].weight)
    torch.manual_seed(0)
    xavier = build_model(ModelConfig(depth=1, width=256, init="xavier"), 784, 10)
    bound = (6 / (784 + 256)) ** 0.5
    assert xavier[1].weight.abs().max() <= bound
