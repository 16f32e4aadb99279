"""Checkpoints describe themselves and rebuild the model from the file alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mnist_cli.checkpoint import FORMAT_VERSION, load_checkpoint
from mnist_cli.data.datasets import MNIST_MEAN, MNIST_STD
from mnist_cli.inference.trained import load_trained


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
    from mnist_cli.data.datasets import load_dataset
    from mnist_cli.evaluate import evaluate

    trained = load_trained(trained_checkpoint)
    assert not trained.model.training
    _, test = load_dataset("mnist", synthetic_root)
    result = evaluate(trained.model, test, trained.normalization, len(trained.classes))
    assert result.accuracy == trained.metrics["test_accuracy"] == trained.test_accuracy
    assert result.loss == pytest.approx(trained.metrics["test_loss"])
    assert trained.normalization.std == MNIST_STD


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name", ["format1-plain", "format1-batchnorm-dropout"])
def test_a_format_1_checkpoint_evaluates_exactly_as_before(name, tmp_path, monkeypatch):
    """Checkpoints written before the layers were named (keys like 1.weight) keep their numbers.

    The fixtures and their `mnist eval --json` output were made by the release that wrote format 1, on the
    tests' synthetic data (conftest.write_mnist), which is rebuilt here byte for byte.
    """
    import json

    from conftest import write_mnist
    from typer.testing import CliRunner

    from mnist_cli.cli import app

    monkeypatch.setenv("MNIST_DATA_DIR", str(write_mnist(tmp_path / "data")))
    raw = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    assert raw["format_version"] == 1 and "1.weight" in raw["model_state"]
    r = CliRunner().invoke(app, ["eval", str(FIXTURES / f"{name}.pt"), "--json"])
    assert r.exit_code == 0, r.output
    expected = json.loads((FIXTURES / "format1-expected.json").read_text())[name]
    assert json.loads(r.stdout) == expected
    assert load_checkpoint(FIXTURES / f"{name}.pt")["format_version"] == FORMAT_VERSION == 2
