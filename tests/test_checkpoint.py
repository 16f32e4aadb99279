"""Checkpoints describe themselves, rebuild the model from the file alone, and refuse damaged or hostile files."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, invoke, sign, synthetic_digits
from PIL import Image

from mnist_cli.checkpoint import FORMAT_VERSION, load_checkpoint
from mnist_cli.data.catalog import MNIST_MEAN, MNIST_STD
from mnist_cli.inference.trained import load_trained
from mnist_cli.record import read_result


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
    assert {"val_accuracy", "train_loss", "epoch", "best"} <= set(ckpt["metrics"])
    assert ckpt["optimizer_state"]["state"] and ckpt["config"]["model"]["width"] == 32
    assert _plain(ckpt)


def test_the_reloaded_model_reproduces_the_accuracy_measured_in_training(trained_checkpoint, synthetic_root):
    from mnist_cli.data.datasets import load_dataset
    from mnist_cli.evaluate import evaluate

    trained = load_trained(trained_checkpoint)
    assert not trained.model.training
    _, test = load_dataset("mnist", synthetic_root)
    result = evaluate(trained.model, test, trained.normalization, len(trained.classes))
    run = read_result(trained_checkpoint.parent)  # the final test, in the run's result.json
    assert result.accuracy == run.test_accuracy == trained.test_accuracy
    assert result.loss == pytest.approx(run.test_loss)
    assert trained.normalization.std == MNIST_STD


FIXTURES = Path(__file__).parent / "fixtures"


def same(got, expected) -> bool:
    """Equal, but floats to 1e-6 relative: JSON of the same answers computed on another CPU."""
    if isinstance(expected, float):
        return got == pytest.approx(expected, rel=1e-6)
    if isinstance(expected, dict):
        return isinstance(got, dict) and got.keys() == expected.keys() and all(same(got[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(map(same, got, expected))
    return got == expected


@pytest.mark.parametrize("name", ["format1-plain", "format1-batchnorm-dropout", "format2-best", "format2-last"])
def test_checkpoints_of_the_releases_before_give_exactly_the_same_answers(name, tmp_path):
    """Format 1 (keys like 1.weight, before the layers were named) and format 2's best.pt and last.pt (before the run
    record): made by those releases on the tests' synthetic data, with their `eval --json` and `predict --json`.
    Their recorded data.root is a folder of the machine that made them: eval reads this machine's data instead. Another
    CPU's matmul kernels round differently: the same answers and counts, floats such as the loss to 1e-6."""
    version = int(name[6])
    expected = json.loads((FIXTURES / f"format{version}-expected.json").read_text())[name]
    raw = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    assert raw["format_version"] == version and ("1.weight" in raw["model_state"]) == (version == 1)
    r = invoke("eval", FIXTURES / f"{name}.pt", "--json")
    assert r.exit_code == 0, r.output
    assert same(json.loads(r.stdout), expected.get("eval", expected))
    assert load_checkpoint(FIXTURES / f"{name}.pt")["format_version"] == FORMAT_VERSION == 2
    if version == 2:
        for i, image in enumerate(synthetic_digits(3, seed=7)[0]):
            Image.fromarray(image).save(tmp_path / f"digit{i}.png")
        r = invoke("predict", "-m", FIXTURES / f"{name}.pt", "--json", "digit0.png", "digit1.png", "digit2.png")
        assert r.exit_code == 0, r.output
        assert same(json.loads(r.stdout), expected["predict"]) and r.stderr == expected["predict_stderr"]


# --- damaged and hostile checkpoints: one line, exit 2, nothing runs ----------------------------------------


def test_flipped_bytes_anywhere_are_refused_or_harmless(trained_checkpoint, tmp_path):
    data, clean = bytearray(trained_checkpoint.read_bytes()), invoke("eval", trained_checkpoint, "--json").stdout
    outcomes = set()
    for i in range(0, len(data), max(1, len(data) // 40)):  # 40 positions across the file
        bad = bytearray(data)
        bad[i] ^= 0x55
        (tmp_path / "flip.pt").write_bytes(bytes(bad))
        r = invoke("eval", tmp_path / "flip.pt", "--json")
        assert r.exit_code in (0, 2), (i, r.output)
        if r.exit_code == 0:
            # Only bytes nothing reads may change silently (zip padding, unused records): the answer stays the same.
            assert r.stdout == clean, i
        outcomes.add(r.exit_code)
    assert 2 in outcomes


@pytest.mark.parametrize(
    ("change", "message", "signed"),
    [
        (lambda c: c["model_state"]["hidden.0.linear.weight"].fill_(float("nan")), "hold NaN or inf", True),
        (lambda c: c.update(normalization={"mean": 0.1, "std": 0.0}), "positive std", True),
        (lambda c: c.update(classes="0123456789"), "classes must be a list", True),
        (lambda c: c.update(input_shape=[3, 32, 32]), "input_shape", True),
        (lambda c: c.update(model_state=[1, 2, 3]), "model_state must map", True),
        (lambda c: c["config"]["model"].update(depth=3), "do not match the stored architecture", True),
        (lambda c: c["config"]["model"].update(depth=64, width=65536), "do not match the stored architecture", True),
        (lambda c: c["config"]["model"].update(activation="swish"), "stored config", True),
        (lambda c: c.update(format="something else"), "not an mnist-cli checkpoint", True),
        (lambda c: c.pop("classes"), "lacks classes", True),
        (lambda c: c.update(format_version=999), "newer than this mnist-cli reads", True),
        (lambda c: c["config"]["model"].update(width=999), "do not match the stored architecture", True),
        # Found by hypothesis: comparing such a list with `!=` raised inside the field check.
        (lambda c: c.update(input_shape=[True, torch.zeros(0), None]), "input_shape", True),
        # Not re-signed: the digest catches what the field checks cannot.
        (lambda c: c["model_state"]["hidden.0.linear.weight"][0, 0].add_(1e-3), "checkpoint is corrupt", False),
        (lambda c: c.pop("digest"), "not a checkpoint written by mnist-cli (it has no digest)", False),
    ],
)
def test_edited_checkpoints_are_refused(trained_checkpoint, tmp_path, change, message, signed):
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    change(ckpt)
    torch.save(sign(ckpt) if signed else ckpt, tmp_path / "edited.pt")
    assert_clean_error(invoke("eval", tmp_path / "edited.pt"), message)


def _zip_without_torch(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "hi")


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: torch.save({"just": "a dict"}, p), "not an mnist-cli checkpoint"),
        (lambda p: torch.save(torch.zeros(3), p), "not an mnist-cli checkpoint"),
        (lambda p: torch.save([1, 2, 3], p), "not an mnist-cli checkpoint"),
        (_zip_without_torch, "not a readable checkpoint"),
        (lambda p: p.write_bytes(b""), "not a checkpoint"),
        (lambda p: p.write_bytes(b"garbage" * 100), "not a checkpoint"),
        (lambda p: p.write_bytes(b"PK\x03\x04broken zip"), "not a checkpoint"),
        (lambda p: p.unlink() or p.mkdir(), "is a folder; give a checkpoint file in it"),
        *[
            (lambda p, k=keep: p.write_bytes(p.read_bytes()[: int(p.stat().st_size * k)]), "")
            for keep in (0, 0.1, 0.5, 0.9, 0.999)
        ],
    ],
)
def test_files_that_are_not_our_checkpoints_are_named_and_refused(tmp_path, trained_checkpoint, write, message):
    """`write` replaces a good checkpoint at the path (a copy of trained_checkpoint) with something else."""
    write(Path(shutil.copy(trained_checkpoint, tmp_path / "other.pt")))
    assert_clean_error(invoke("eval", tmp_path / "other.pt"), str(tmp_path / "other.pt"), message)


@pytest.mark.parametrize("command", ["eval", "predict", "resume"])
def test_a_malicious_pickle_runs_nothing_in_any_command(tmp_path, command):
    # A real exploit: unpickling calls os.system. weights_only=True must refuse it before anything runs.
    import os

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "last.pt"
    torch.save({"format": "mnist-cli checkpoint", "format_version": 1, "model_state": Exploit()}, path)
    (tmp_path / "x.png").write_bytes(b"")
    args = {"eval": ["eval", path], "predict": ["predict", tmp_path / "x.png", "-m", path], "resume": ["train", "--resume", path]}
    r = invoke(*args[command])
    assert_clean_error(r, "refused to load", "system")
    assert not marker.exists()
