"""Which checkpoint predict and serve use without -m, and the line that says which and why; --device picks where."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, blob_png, invoke, place_checkpoint

from mnist_cli.inference.trained import load_trained


@pytest.fixture
def digit(tmp_path) -> Path:
    return blob_png(tmp_path / "bar.png")


def test_the_only_checkpoint_is_named_with_its_architecture_and_accuracy(trained_checkpoint, digit):
    chosen = place_checkpoint(trained_checkpoint, Path("tiny"), 1e9)
    accuracy = load_trained(chosen).test_accuracy
    r = invoke("predict", digit)
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [f"using checkpoint {chosen} (784-32-10, test accuracy {accuracy:.2%})"]


def test_newer_truth_table_and_sweep_runs_do_not_shadow_the_image_model(trained_checkpoint, xor_checkpoint, digit):
    """After the XOR tutorial and a sweep, predict still uses the user's model, and says what it left out."""
    chosen = place_checkpoint(trained_checkpoint, Path("default"), 1e9)
    place_checkpoint(xor_checkpoint, Path("tutorial-xor"), 2e9)
    place_checkpoint(trained_checkpoint, Path("sweeps/tiny-width/model.width=16/seed=0"), 3e9)
    r = invoke("predict", digit, "--json")
    assert r.exit_code == 0, r.output
    accuracy = load_trained(chosen).test_accuracy
    assert json.loads(r.stdout)[0]["path"] == str(digit)
    assert r.stderr.splitlines() == [
        f"using checkpoint {chosen} (784-32-10, test accuracy {accuracy:.2%}): the best test accuracy of 1 image models "
        f"under {chosen.parents[1]}/ (left out: 1 sweep run, 1 truth-table model); -m picks another"
    ]


def test_only_truth_tables_is_an_error_that_says_what_to_do(xor_checkpoint, digit):
    place_checkpoint(xor_checkpoint, Path("tutorial-xor"), 1e9)
    root = Path(os.environ["MNIST_CHECKPOINT_DIR"])
    message = f"no model trained on images under {root}/ (1 best.pt: truth tables or unreadable); "
    message += "train one with `mnist train` or pass --checkpoint"
    assert_clean_error(invoke("predict", digit), message)
    r = invoke("serve", "--port", "0")
    assert (r.exit_code, r.stdout, r.stderr) == (2, "", f"error: {message}\n")


def test_a_truth_table_model_given_with_m_is_refused_in_one_line(xor_checkpoint, digit):
    message = f"{xor_checkpoint} was trained on the xor truth table: %s takes no images; "
    message += f"`mnist eval {xor_checkpoint}` prints its outputs for the four points"
    assert_clean_error(invoke("predict", digit, "-m", xor_checkpoint), message % "predict")
    r = invoke("serve", "-m", xor_checkpoint, "--port", "0")
    assert (r.exit_code, r.stdout, r.stderr) == (2, "", f"error: {message % 'serve'}\n")


def test_a_checkpoint_given_with_m_is_not_announced(trained_checkpoint, digit):
    r = invoke("predict", digit, "-m", trained_checkpoint, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""


def test_predict_runs_on_cuda_or_says_it_is_absent(trained_checkpoint, digit):
    cuda = invoke("predict", digit, "-m", trained_checkpoint, "--json", "--device", "cuda")
    if not torch.cuda.is_available():
        assert_clean_error(cuda, "CUDA is not available")
        return
    cpu = invoke("predict", digit, "-m", trained_checkpoint, "--json")
    assert cpu.exit_code == cuda.exit_code == 0, cuda.output
    assert cpu.stdout.split('"probability"')[0] == cuda.stdout.split('"probability"')[0]  # same prediction
