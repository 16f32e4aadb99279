"""Faults before and during training, and hostile files: each ends in one clear line and exit 2, nothing lost."""

from __future__ import annotations

import errno
import gzip
import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import REAL_DATA, sign, write_config, write_mnist
from typer.testing import CliRunner

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_error(r, *needles: str) -> None:
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit), r.exception  # a clean exit, not an exception that escaped
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr


# --- numerical faults -------------------------------------------------------------------------------------------


def test_a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    # SGD at lr 10 really diverges on the synthetic data: epoch 1 ends finite, the loss reaches inf in epoch 2.
    cfg = write_config(tmp_path / "hot.yaml", train={"epochs": 3, "optimizer": "sgd", "lr": 10.0})
    r = invoke("train", "-c", cfg, "--out", tmp_path / "run", "-q")
    assert_clean_error(r, "loss became", "at epoch 2, step", "last good checkpoint")
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["resume"]["epoch"] == 2 and last["resume"]["step"] == 0
    assert all(torch.isfinite(v).all() for v in last["model_state"].values())


def test_on_nan_skip_drops_the_bad_batches_and_finishes(tmp_path, monkeypatch):
    import mnist_cli.training.loop as train_module

    real, calls = train_module.F.cross_entropy, iter(range(10_000))

    def sometimes_nan(*args, **kwargs):
        loss = real(*args, **kwargs)
        return loss * float("nan") if next(calls) in (3, 20) else loss  # two poisoned batches

    monkeypatch.setattr(train_module.F, "cross_entropy", sometimes_nan)
    cfg = write_config(tmp_path / "c.yaml", train={"epochs": 2, "on_nan": "skip"})
    r = invoke("train", "-c", cfg, "--out", tmp_path / "run", "-q", "--json")
    assert r.exit_code == 0, r.output
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert '"skipped_steps": 1' in rows[0] and '"skipped_steps": 1' in rows[1]
    assert all(torch.isfinite(v).all() for v in load_checkpoint(tmp_path / "run" / "best.pt")["model_state"].values())


# --- preflight --------------------------------------------------------------------------------------------------


def test_an_output_dir_that_cannot_be_created_is_refused(tmp_path, tiny_config):
    (tmp_path / "file").write_text("")
    assert_clean_error(invoke("train", "-c", tiny_config, "--out", tmp_path / "file" / "run"), "cannot be created or written")


def test_not_enough_disk_for_the_checkpoints_is_refused(tmp_path, tiny_config, monkeypatch):
    import mnist_cli.training.preflight as preflight

    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 5000, 5000))
    r = invoke("train", "-c", tiny_config, "--out", tmp_path / "run")
    assert_clean_error(r, "not enough free space", "4.9 KB is free")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_model_too_big_for_memory_is_refused_before_allocating_it(tmp_path, tiny_config):
    # 64 layers of 65536: about 275 billion parameters; building it would take down the machine.
    r = invoke("train", "-c", tiny_config, "--set", "model.depth=64", "--set", "model.width=65536", "--out", tmp_path / "r")
    assert_clean_error(r, "needs about", "lower model.width")


def test_two_runs_into_one_folder_are_refused(tmp_path, tiny_config):
    from mnist_cli.training.rundir import RunDir

    (tmp_path / "run").mkdir()
    with RunDir(tmp_path / "run").locked():
        assert_clean_error(invoke("train", "-c", tiny_config, "--out", tmp_path / "run"), "another `mnist train` is writing")


def test_dry_run_checks_everything_and_trains_nothing(tmp_path, tiny_config):
    r = invoke("train", "-c", tiny_config, "--out", tmp_path / "run", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "preflight passed" in r.stdout and not (tmp_path / "run" / "last.pt").exists()


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_previous_file(tmp_path, tiny_config, monkeypatch):
    import mnist_cli.disk as disk

    r = invoke("train", "-c", tiny_config, "--out", tmp_path / "run", "-q", "--set", "train.epochs=1")
    assert r.exit_code == 0, r.output
    before = (tmp_path / "run" / "last.pt").read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(disk.os, "fsync", full)
    r = invoke("train", "-c", tiny_config, "--out", tmp_path / "run", "-q", "--overwrite")
    assert_clean_error(r, "No space left on device", "intact")
    assert (tmp_path / "run" / "last.pt").read_bytes() == before
    assert not list((tmp_path / "run").glob(".*.tmp"))


# --- corrupt datasets -------------------------------------------------------------------------------------------


def corrupt_copy(tmp_path: Path, synthetic_root: Path, name: str, change) -> Path:
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    path = root / "MNIST" / "raw" / name
    path.write_bytes(change(path.read_bytes()))
    return root


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("train-images-idx3-ubyte", lambda b: b[: len(b) // 2], "is truncated"),
        ("train-images-idx3-ubyte", lambda b: b + b"\0" * 10, "longer than its header says"),
        ("train-labels-idx1-ubyte", lambda b: b"\0\0\x08\x03" + b[4:], "wrong IDX header"),
        ("t10k-images-idx3-ubyte", lambda b: b"\x1f\x8b" + b[2:], "not an IDX file"),
        ("t10k-labels-idx1-ubyte", lambda b: b[:6], "truncated inside its header"),
        ("t10k-images-idx3-ubyte", lambda b: b[:8] + (32).to_bytes(4, "big") + b[12:], "holds items of 32x28"),
        ("train-labels-idx1-ubyte", lambda b: b[:8] + b"\x63" + b[9:], "holds label 99"),
        ("train-labels-idx1-ubyte", lambda b: b"", "not an IDX file"),
    ],
)
def test_corrupt_unpacked_files_are_named(tmp_path, synthetic_root, tiny_config, name, change, message):
    root = corrupt_copy(tmp_path, synthetic_root, name, change)
    r = invoke("train", "-c", tiny_config, "--set", f"data.root={root}", "--out", tmp_path / "run")
    assert_clean_error(r, name, message)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_images_and_labels_of_different_lengths_are_refused(tmp_path, synthetic_root, tiny_config):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    write_mnist(tmp_path / "other", n_train=300)
    shutil.copy(tmp_path / "other" / "MNIST" / "raw" / "train-labels-idx1-ubyte", root / "MNIST" / "raw")
    r = invoke("train", "-c", tiny_config, "--set", f"data.root={root}")
    assert_clean_error(r, "holds 600 images but", "holds 300 labels")


@pytest.fixture
def archives(tmp_path, monkeypatch) -> Path:
    """Synthetic .gz archives whose MD5s are registered as genuine, as if a mirror published them."""
    from torchvision import datasets

    root = write_mnist(tmp_path / "gz", gz=True)
    raw = root / "MNIST" / "raw"
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setattr(
        datasets.MNIST, "resources", [(n, hashlib.md5((raw / n).read_bytes()).hexdigest()) for n, _ in datasets.MNIST.resources]
    )
    return root


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: gzip.compress(data)[:-30], "not a complete gzip archive"),
        (lambda data: b"not gzip at all" * 10, "not a complete gzip archive"),
        (lambda data: gzip.compress(b"\0\0\x08\x01" + data[4:]), "wrong IDX header"),
        (lambda data: gzip.compress(data[:-100]), "is truncated"),
    ],
)
def test_bad_archives_are_named_and_nothing_half_unpacked_stays(tmp_path, archives, tiny_config, monkeypatch, change, message):
    from torchvision import datasets

    raw = archives / "MNIST" / "raw"
    path = raw / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(change(gzip.decompress((raw / "t10k-images-idx3-ubyte.gz").read_bytes())))
    resources = [(n, hashlib.md5((raw / n).read_bytes()).hexdigest()) for n, _ in datasets.MNIST.resources]
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    r = invoke("train", "-c", tiny_config, "--set", f"data.root={archives}")
    assert_clean_error(r, "t10k-images-idx3-ubyte.gz", message)
    cache = tmp_path / "cache" / "mnist-cli" / "data" / "MNIST" / "raw"
    assert not (cache / "t10k-images-idx3-ubyte").exists() and not list(cache.glob(".*.tmp"))


def test_an_archive_with_the_wrong_checksum_is_named(tmp_path, tiny_config):
    if not (REAL_DATA / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("needs the real MNIST archives")
    raw = tmp_path / "d" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (REAL_DATA / "MNIST" / "raw").glob("*.gz"):
        shutil.copy(path, raw)
    labels = raw / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-10])  # a truncated download
    r = invoke("train", "-c", tiny_config, "--set", f"data.root={tmp_path / 'd'}")
    assert_clean_error(r, "t10k-labels-idx1-ubyte.gz is corrupt (MD5 mismatch")


# --- hostile and damaged checkpoints ----------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_checkpoints_are_refused(trained_checkpoint, tmp_path, keep):
    data = trained_checkpoint.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: int(len(data) * keep)])
    assert_clean_error(invoke("eval", tmp_path / "cut.pt"), "cut.pt")


def test_flipped_bytes_anywhere_are_refused_or_harmless(trained_checkpoint, tmp_path):
    data = bytearray(trained_checkpoint.read_bytes())
    outcomes = set()
    for i in range(0, len(data), max(1, len(data) // 40)):  # 40 positions across the file
        bad = bytearray(data)
        bad[i] ^= 0x55
        (tmp_path / "flip.pt").write_bytes(bytes(bad))
        r = invoke("eval", tmp_path / "flip.pt", "--json")
        assert r.exit_code in (0, 2), (i, r.output)
        if r.exit_code == 0:
            # Only bytes nothing reads may change silently (zip padding, unused records): the answer stays the same.
            assert r.stdout == invoke("eval", trained_checkpoint, "--json").stdout, i
        outcomes.add(r.exit_code)
    assert 2 in outcomes


def resaved(trained_checkpoint: Path, tmp_path: Path, change) -> Path:
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    change(ckpt)
    torch.save(sign(ckpt), tmp_path / "edited.pt")  # re-signed: the field checks, not the digest, must catch it
    return tmp_path / "edited.pt"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["model_state"]["hidden.0.linear.weight"].fill_(float("nan")), "hold NaN or inf"),
        (lambda c: c.update(normalization={"mean": 0.1, "std": 0.0}), "positive std"),
        (lambda c: c.update(classes="0123456789"), "classes must be a list"),
        (lambda c: c.update(input_shape=[3, 32, 32]), "input_shape"),
        (lambda c: c.update(model_state=[1, 2, 3]), "model_state must map"),
        (lambda c: c["config"]["model"].update(depth=3), "do not match the stored architecture"),
        (lambda c: c["config"]["model"].update(depth=64, width=65536), "do not match the stored architecture"),
        (lambda c: c["config"]["model"].update(activation="swish"), "stored config"),
        (lambda c: c.update(format="something else"), "not an mnist-cli checkpoint"),
        (lambda c: c.pop("classes"), "lacks classes"),
    ],
)
def test_checkpoints_with_bad_fields_are_refused(trained_checkpoint, tmp_path, change, message):
    assert_clean_error(invoke("eval", resaved(trained_checkpoint, tmp_path, change)), message)


def test_a_digest_mismatch_is_called_corruption(trained_checkpoint, tmp_path):
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    ckpt["model_state"]["hidden.0.linear.weight"][0, 0] += 1e-3
    torch.save(ckpt, tmp_path / "tampered.pt")
    assert_clean_error(invoke("eval", tmp_path / "tampered.pt"), "checkpoint is corrupt")


@pytest.mark.parametrize(
    "payload",
    [
        {"just": "a dict"},
        torch.zeros(3),
        [1, 2, 3],
    ],
)
def test_other_torch_files_are_refused(tmp_path, payload):
    torch.save(payload, tmp_path / "other.pt")
    assert_clean_error(invoke("eval", tmp_path / "other.pt"), "not an mnist-cli checkpoint")


def test_a_zip_that_torch_did_not_write_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "plain.pt", "w") as z:
        z.writestr("hello.txt", "hi")
    assert_clean_error(invoke("eval", tmp_path / "plain.pt"), "not a readable checkpoint")


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
