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


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_truth_table_models_found_or_given_with_m_are_refused_in_one_line_that_says_what_to_do(command, xor_checkpoint, digit):
    place_checkpoint(xor_checkpoint, Path("tutorial-xor"), 1e9)
    found = f"no model trained on images under {os.environ['MNIST_CHECKPOINT_DIR']}/ (1 best.pt: truth tables or "
    found += "unreadable); train one with `mnist train` or pass --checkpoint"
    given = f"{xor_checkpoint} was trained on the xor truth table: {command} takes no images; "
    given += f"`mnist eval {xor_checkpoint}` prints its outputs for the four points"
    for extra, message in (([], found), (["-m", xor_checkpoint], given)):
        r = invoke(command, *([digit] if command == "predict" else ["--port", "0"]), *extra)
        assert_clean_error(r, message)
        assert (r.stdout, r.stderr) == ("", f"error: {message}\n")


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
