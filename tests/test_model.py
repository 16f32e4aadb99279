"""The MLP built from the model config: named layers, widths, norms, activations, initialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnist_cli.config import ModelConfig
from mnist_cli.model import ACTIVATIONS, architecture, build_model, count_parameters, legacy_key_map


@pytest.mark.parametrize(
    ("cfg", "parameters"),
    [(ModelConfig(depth=0), 784 * 10 + 10), (ModelConfig(depth=1, width=256), 784 * 256 + 256 + 256 * 10 + 10)],
)
def test_depth_zero_is_linear_softmax_and_classic_256_has_the_tutorial_count(cfg, parameters):
    model = build_model(cfg, 784, 10)
    assert len(model.hidden) == cfg.depth and count_parameters(model) == parameters


def test_layers_are_named_hidden_i_and_output_with_per_layer_widths():
    model = build_model(ModelConfig(depth=2, width=8, norm="layer"), 784, 10)
    hidden = [f"hidden.{i}.{layer}.{p}" for i in range(2) for layer in ("linear", "norm") for p in ("weight", "bias")]
    assert list(model.state_dict()) == [*hidden, "output.weight", "output.bias"]
    model = build_model(ModelConfig(depth=3, width=[64, 32, 16]), 784, 10)
    assert [(m.in_features, m.out_features) for m in model.linears()] == [(784, 64), (64, 32), (32, 16), (16, 10)]
    assert model(torch.zeros(5, 28, 28)).shape == (5, 10)
    assert architecture(784, [64, 32, 16], 10) == "784-64-32-16-10"


@pytest.mark.parametrize(("norm", "layers"), [("batch", [nn.BatchNorm1d]), ("layer", [nn.LayerNorm]), ("none", [])])
def test_norm_layers_and_no_dropout(norm, layers):
    model = build_model(ModelConfig(depth=2, width=8, norm=norm), 784, 10)
    # A hidden layer holds only the parts that are on: no norm or dropout layer when they are off.
    assert [[type(m) for m in h] for h in model.hidden] == [[nn.Linear, *layers, nn.ReLU]] * 2
    # Batch norm's shift makes the Linear's bias redundant.
    assert all((h.linear.bias is None) == (norm == "batch") for h in model.hidden)


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu", "tanh", "sigmoid"])
def test_activations(activation):
    model = build_model(ModelConfig(depth=2, width=8, activation=activation, dropout=0.1), 784, 10)
    assert [type(h.act) for h in model.hidden] == [ACTIVATIONS[activation]] * 2
    assert [type(h.dropout) for h in model.hidden] == [nn.Dropout] * 2
    x = torch.randn(3, 784, generator=torch.Generator().manual_seed(0))
    model.eval()
    # The hidden layer computes act(linear(x)): checked against the activation's own function.
    assert torch.allclose(model.hidden[0](x), ACTIVATIONS[activation]()(model.hidden[0].linear(x)))


def test_xavier_and_kaiming_zero_the_biases_and_change_weights():
    def built(**init):
        torch.manual_seed(0)
        return build_model(ModelConfig(depth=1, width=256, **init), 784, 10)

    default = built()
    for init in ("xavier", "kaiming"):
        model = built(init=init)
        assert torch.count_nonzero(model.hidden[0].linear.bias) == 0 and torch.count_nonzero(model.output.bias) == 0
        assert not torch.equal(model.hidden[0].linear.weight, default.hidden[0].linear.weight)
    assert built(init="xavier").hidden[0].linear.weight.abs().max() <= (6 / (784 + 256)) ** 0.5


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        (ModelConfig(depth=0), {"1.weight": "output.weight", "1.bias": "output.bias"}),
        (
            ModelConfig(depth=1, width=8, dropout=0.1),
            {
                "1.weight": "hidden.0.linear.weight",
                "1.bias": "hidden.0.linear.bias",
                "4.weight": "output.weight",
                "4.bias": "output.bias",
            },
        ),
    ],
)
def test_format_1_keys_map_to_the_named_layers(cfg, expected):
    assert legacy_key_map(cfg) == expected


def test_format_1_keys_of_batch_norm_cover_its_buffers():
    cfg = ModelConfig(depth=2, width=8, norm="batch")
    mapping = legacy_key_map(cfg)
    # Sequential: 0 Flatten, 1 Linear, 2 BatchNorm, 3 ReLU, 4 Linear, 5 BatchNorm, 6 ReLU, 7 Linear.
    assert mapping["2.running_var"] == "hidden.0.norm.running_var"
    assert mapping["5.num_batches_tracked"] == "hidden.1.norm.num_batches_tracked"
    assert mapping["7.weight"] == "output.weight"
    assert set(mapping.values()) == set(build_model(cfg, 784, 10).state_dict())
