"""`mnist export`: onnxruntime and torch.jit read the files back and agree with the PyTorch model, metadata included."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REAL_DATA, assert_clean_error, invoke, write_config

from mnist_cli.data.datasets import load_split
from mnist_cli.inference.predict import classify
from mnist_cli.inference.trained import load_trained

FORMATS = ("onnx", "torchscript")
SPECS = {"mnist": ([28, 28], 255.0), "digits": ([8, 8], 16.0), "xor": ([2], 1.0)}


def run_exported(path: Path, fmt: str, inputs: np.ndarray) -> tuple[np.ndarray, dict[str, str]]:
    """(probabilities, metadata) as a program without mnist-cli gets them: onnxruntime, or torch.jit."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        (probs,) = session.run(["probabilities"], {"input": inputs})
        return probs, session.get_modelmeta().custom_metadata_map
    extra = {"classes": "", "input": "", "model": ""}
    with warnings.catch_warnings():  # torch 2.14 marks torch.jit deprecated
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(path, _extra_files=extra)
    with torch.inference_mode():
        return module(torch.from_numpy(inputs)).numpy(), {k: v.decode() for k, v in extra.items()}


def assert_same_as_pytorch(checkpoint: Path, exported: Path, fmt: str, root: Path) -> None:
    """Identical predicted classes and probabilities within 1e-5 on the test split, in one batch and one at a time."""
    trained = load_trained(checkpoint)
    split = load_split(trained.config.data.dataset, root, "test", 0, 0)
    expected = classify(trained.model, split.images, trained.normalization).numpy()
    inputs = split.images.float().numpy()  # raw values, as a user has them: 0-255 pixels, 0-16 counts, 0/1 pairs
    probs, metadata = run_exported(exported, fmt, inputs)
    one, _ = run_exported(exported, fmt, inputs[:1])  # the batch dimension is not fixed at export
    assert probs.shape == expected.shape and one.shape == (1, expected.shape[1])
    assert (probs.argmax(1) == expected.argmax(1)).all()
    assert np.abs(probs - expected).max() <= 1e-5 and np.abs(one[0] - expected[0]).max() <= 1e-5
    shape, high = SPECS[trained.config.data.dataset]
    spec = json.loads(metadata["input"])
    assert json.loads(metadata["classes"]) == trained.classes
    assert (spec["shape"], spec["low"], spec["high"], spec["dtype"]) == (shape, 0.0, high, "float32")
    assert metadata["model"] == trained.describe()


# Batch norm and dropout behave differently in training: the export must carry eval mode's running statistics.
SMALL = {
    "digits": {"data": {"dataset": "digits", "val_size": 0}},
    "mnist-batch-norm": {"model": {"depth": 2, "width": 32, "norm": "batch", "dropout": 0.2, "activation": "gelu"}},
}


@pytest.fixture(scope="module", params=["mnist", "xor", *SMALL])
def small_checkpoint(request, trained_checkpoint, xor_checkpoint, tmp_path_factory, synthetic_root) -> Path:
    """The shared synthetic-MNIST and XOR checkpoints, and one epoch of each of SMALL."""
    if request.param in ("mnist", "xor"):
        return {"mnist": trained_checkpoint, "xor": xor_checkpoint}[request.param]
    from mnist_cli.config import load_config
    from mnist_cli.training.loop import train

    out = tmp_path_factory.mktemp(request.param)
    # A module fixture runs before the autouse one that points MNIST_DATA_DIR at the synthetic data: name it here.
    sections = {"data": {"val_size": 100, "root": str(synthetic_root)}} | SMALL[request.param]
    cfg = write_config(out / "c.yaml", train={"epochs": 1}, **sections)
    train(load_config(cfg), out / "run")
    return out / "run" / "best.pt"


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_model_takes_raw_inputs_and_gives_the_same_probabilities(small_checkpoint, fmt, tmp_path, synthetic_root):
    out = tmp_path / "out" / f"model.{fmt}"
    r = invoke("export", small_checkpoint, "--format", fmt, "-o", out, "--json")
    assert r.exit_code == 0, r.output
    written = json.loads(r.stdout)
    trained = load_trained(small_checkpoint)
    assert (written["path"], written["format"], written["classes"]) == (str(out), fmt, trained.classes)
    assert written["input"]["shape"] == SPECS[trained.config.data.dataset][0]
    assert_same_as_pytorch(small_checkpoint, out, fmt, synthetic_root)


def test_export_writes_to_the_current_folder_named_for_the_run(trained_checkpoint, tmp_path):
    # Not into the run folder: `mnist train` refuses a folder holding files that are not a run's.
    (tmp_path / "runs" / "tiny").mkdir(parents=True)
    checkpoint = Path(shutil.copy(trained_checkpoint, tmp_path / "runs" / "tiny" / "best.pt"))
    shutil.copy(trained_checkpoint.parent / "result.json", checkpoint.parent)  # where its test accuracy is
    r = invoke("export", checkpoint, "-f", "torchscript")  # the autouse fixture made tmp_path the current folder
    assert r.exit_code == 0, r.output
    assert (tmp_path / "tiny-best.torchscript").is_file()
    assert r.stdout.startswith("wrote tiny-best.torchscript (torchscript, 784-32-10, test accuracy "), r.stdout
    assert "float32 (batch, 28, 28) of 0-255 in, probabilities of 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 out" in r.stdout
    r = invoke("export", checkpoint, "-o", tmp_path / "runs")  # a folder: the same name, in it
    assert r.exit_code == 0, r.output
    assert (tmp_path / "runs" / "tiny-best.onnx").is_file()


def test_export_refuses_bad_input_in_one_line(trained_checkpoint, tmp_path, monkeypatch):
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    assert_clean_error(invoke("export", tmp_path / "notes.pt"), "notes.pt: not a checkpoint (not a file written by torch.save)")
    assert_clean_error(invoke("export", tmp_path / "missing.pt"), "no such checkpoint: ")
    if Path("/sys").is_dir():  # sysfs takes no new file, even from root
        r = invoke("export", trained_checkpoint, "-o", "/sys/model.onnx")
        assert_clean_error(r, "cannot write /sys/model.onnx (permission denied); model.onnx was not written")
    r = invoke("export", trained_checkpoint, "-o", trained_checkpoint)
    assert_clean_error(r, f"cannot export to {trained_checkpoint}: it is the checkpoint being exported")
    r = invoke("export", trained_checkpoint, "--format", "pdf")
    assert r.exit_code == 2 and "Invalid value for '--format'" in r.stderr and "is not one of" in r.stderr, r.output
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if the [export] extra were not installed
    r = invoke("export", trained_checkpoint, "-o", tmp_path / "model.onnx")
    assert_clean_error(r, 'ONNX export needs the onnx and onnxscript packages: pip install "mnist-cli[export]"')
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_real_model_agrees_on_the_10000_test_images(real_checkpoint, fmt, tmp_path):
    out = tmp_path / f"model.{fmt}"
    r = invoke("export", real_checkpoint, "--format", fmt, "-o", out)
    assert r.exit_code == 0, r.output
    assert_same_as_pytorch(real_checkpoint, out, fmt, REAL_DATA)
