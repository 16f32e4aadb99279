"""Checkpoints describe themselves and rebuild the model from the file alone."""

from __future__ import annotations

import pytest
import torch

from mnist_cli.checkpoint import FORMAT_VERSION, load_checkpoint, model_from_checkpoint, normalization_from_checkpoint
from mnist_cli.data import MNIST_MEAN, MNIST_STD


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str | int) and _plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, bool | int | float | str | torch.Tensor)


def test_checkpoint_holds_everything_needed_in_plain_types(trained_checkpoint):
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    assert ckpt["format_version"] == FORMAT_VERSION
    assert set(ckpt["versions"]) == {"mnist_cli", "torch", "torchvision"}
    assert ckpt["classes"] == [str(d) for d in range(10)]
    assert ckpt["normalization"] == {"mean": MNIST_MEAN, "std": MNIST_STD}
    assert {"val_accuracy", "test_accuracy", "train_loss"} <= set(ckpt["metrics"])
    assert ckpt["optimizer_state"]["state"] and ckpt["config"]["model"]["width"] == 32
    assert _plain(ckpt)


def test_the_reloaded_model_reproduces_the_accuracy_measured_in_training(trained_checkpoint, synthetic_root):
    from mnist_cli.data import load_dataset
    from mnist_cli.evaluate import evaluate

    ckpt = load_checkpoint(trained_checkpoint)
    model = model_from_checkpoint(ckpt)
    assert not model.training
    _, test = load_dataset("mnist", synthetic_root)
    result = evaluate(model, test, normalization_from_checkpoint(ckpt), len(ckpt["classes"]))
    assert result.accuracy == ckpt["metrics"]["test_accuracy"]
    assert result.loss == pytest.approx(ckpt["metrics"]["test_loss"])
    assert normalization_from_checkpoint(ckpt).std == MNIST_STD
