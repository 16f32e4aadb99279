"""`mnist predict` without -m says which checkpoint it chose and what that model is; --device picks where it runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from mnist_cli.cli import app
from mnist_cli.inference.trained import load_trained

runner = CliRunner()


@pytest.fixture
def digit(tmp_path) -> Path:
    path = tmp_path / "bar.png"
    Image.fromarray(np.pad(np.full((10, 6), 255, np.uint8), 9)).save(path)
    return path


def test_the_chosen_checkpoint_is_named_with_its_architecture_and_accuracy(trained_checkpoint, digit):
    chosen = Path(os.environ["MNIST_CHECKPOINT_DIR"]) / "tiny" / "best.pt"
    chosen.parent.mkdir(parents=True)
    shutil.copy(trained_checkpoint, chosen)
    shutil.copy(trained_checkpoint.parent / "result.json", chosen.parent)  # the final test, beside the model
    accuracy = load_trained(chosen).test_accuracy
    r = runner.invoke(app, ["predict", str(digit)])
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines()[0] == f"using checkpoint {chosen} (784-32-10, test accuracy {accuracy:.2%})"


def test_a_checkpoint_given_with_m_is_not_announced(trained_checkpoint, digit):
    r = runner.invoke(app, ["predict", str(digit), "-m", str(trained_checkpoint), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert r.stderr == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_absent_device_is_an_error(trained_checkpoint, digit):
    r = runner.invoke(app, ["predict", str(digit), "-m", str(trained_checkpoint), "--device", "cuda"])
    assert r.exit_code == 2, r.output
    assert "CUDA is not available" in r.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_predict_runs_on_cuda(trained_checkpoint, digit):
    cpu = runner.invoke(app, ["predict", str(digit), "-m", str(trained_checkpoint), "--json"])
    cuda = runner.invoke(app, ["predict", str(digit), "-m", str(trained_checkpoint), "--json", "--device", "cuda"])
    assert cpu.exit_code == cuda.exit_code == 0, cuda.output
    assert cpu.stdout.split('"probability"')[0] == cuda.stdout.split('"probability"')[0]  # same prediction
