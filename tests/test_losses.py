"""train.loss and model.init: nll is cross-entropy by another road, mse trains on probabilities, uniform01 init."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import without_clocks, write_config

from mnist_cli.config import load_config
from mnist_cli.errors import ConfigError
from mnist_cli.losses import make_loss, mse, nll
from mnist_cli.model import build_model
from mnist_cli.training.loop import train


def test_nll_and_cross_entropy_give_the_same_training_trajectory(tmp_path):
    config = write_config(tmp_path / "c.yaml", model={"depth": 1, "width": 16, "dropout": 0.1}, train={"epochs": 2})
    for loss in ("cross_entropy", "nll"):
        train(load_config(config, [f"train.loss={loss}"]), tmp_path / loss)
    assert without_clocks(tmp_path / "cross_entropy") == without_clocks(tmp_path / "nll")
    a, b = (torch.load(tmp_path / loss / "last.pt", weights_only=True)["model_state"] for loss in ("cross_entropy", "nll"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nll_with_label_smoothing_is_cross_entropy_with_it():
    logits, labels = torch.randn(64, 10, generator=torch.Generator().manual_seed(0)), torch.arange(64) % 10
    expected = F.cross_entropy(logits, labels, label_smoothing=0.1)
    assert torch.allclose(nll(logits, labels, 0.1), expected, atol=1e-6)
    assert not torch.allclose(nll(logits, labels, 0.0), expected)


def test_mse_compares_softmax_probabilities_with_one_hot_targets():
    logits = torch.tensor([[0.0, 0.0], [10.0, -10.0]])
    # Row 0: probabilities (0.5, 0.5) against (0, 1): squared errors 0.25 each; row 1: right and sure: ~0.
    assert mse(logits, torch.tensor([1, 0])).item() == pytest.approx(0.25 * 2 / 4, abs=1e-6)
    assert make_loss(load_config(None, ["train.loss=mse"]).train) is mse


def test_label_smoothing_applies_only_to_log_losses():
    assert load_config(None, ["train.loss=mse"]).train.label_smoothing == 0.0  # left out: off
    assert load_config(None, ["train.loss=nll"]).train.label_smoothing == 0.1
    with pytest.raises(ConfigError, match=r"label_smoothing 0\.1: applies to cross_entropy and nll"):
        load_config(None, ["train.loss=mse", "train.label_smoothing=0.1"])


def test_uniform01_draws_weights_in_zero_one_and_zeroes_biases():
    cfg = load_config(None, ["model.init=uniform01", "model.depth=1", "model.width=300"]).model
    model = build_model(cfg, 64, 10)
    for layer in model.linears():
        assert layer.weight.min() >= 0 and layer.weight.max() < 1 and layer.weight.std() > 0.2
        assert torch.count_nonzero(layer.bias) == 0
