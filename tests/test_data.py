"""Loading, splitting and batching the data as whole tensors; damaged dataset files are named, never trained on."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import N_TEST, N_TRAIN, REAL_DATA, assert_clean_error, invoke, write_config, write_mnist

from mnist_cli.data.catalog import MNIST_MEAN, MNIST_STD
from mnist_cli.data.datasets import Normalization, load_dataset, normalization_for, split_train_val
from mnist_cli.data.loader import to_inputs
from mnist_cli.errors import DataError


def test_loads_synthetic_idx_files(synthetic_root):
    train, test = load_dataset("mnist", synthetic_root)
    assert train.images.shape == (N_TRAIN, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.shape == (N_TEST,) and test.labels.dtype == torch.int64


def test_split_is_deterministic_disjoint_and_complete(synthetic_root):
    train, _ = load_dataset("mnist", synthetic_root)
    a_train, a_val = split_train_val(train, 100, seed=3)
    _, b_val = split_train_val(train, 100, seed=3)
    _, c_val = split_train_val(train, 100, seed=4)
    assert torch.equal(a_val.images, b_val.images) and not torch.equal(a_val.images, c_val.images)
    assert len(a_train) + len(a_val) == N_TRAIN
    rows = {bytes(x.numpy()) for x in torch.cat([a_train.images, a_val.images])}
    assert len(rows) == N_TRAIN
    with pytest.raises(DataError, match="leaves no training images"):
        split_train_val(train, N_TRAIN, seed=0)


def test_to_inputs_normalises_with_the_dataset_constants():
    x = torch.tensor([[0, 255]], dtype=torch.uint8)
    out = to_inputs(x, normalization_for("mnist", True))
    assert torch.allclose(out, torch.tensor([[-MNIST_MEAN / MNIST_STD, (1 - MNIST_MEAN) / MNIST_STD]]))
    assert torch.allclose(to_inputs(x, Normalization()), torch.tensor([[0.0, 1.0]]))


def test_missing_data_says_which_files_and_where(tmp_path, monkeypatch):
    from torchvision import datasets

    # A closed local port: the download is really attempted and fails at once, without the network.
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(DataError) as e:
        load_dataset("mnist", tmp_path / "empty")
    message = str(e.value)
    assert "train-images-idx3-ubyte.gz" in message and "MNIST_DATA_DIR" in message
    assert str(tmp_path / "empty" / "MNIST" / "raw") in message
    assert not (tmp_path / "empty").exists()  # the failed download left no folder behind


def test_an_unpacked_file_changed_after_unpacking_is_refused(tmp_path):
    raw = write_mnist(tmp_path) / "MNIST" / "raw"
    for path in list(raw.iterdir()):
        (raw / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
    assert len(load_dataset("mnist", tmp_path)[0]) == N_TRAIN
    labels = raw / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[8] = (data[8] + 1) % 10  # one label, 7 -> 8
    labels.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte is not what train-labels-idx1-ubyte.gz beside it unpacks to"):
        load_dataset("mnist", tmp_path)


def test_gz_archives_are_checked_against_torchvisions_md5(tmp_path):
    write_mnist(tmp_path, gz=True)  # synthetic .gz files cannot match the real MD5s
    with pytest.raises(DataError, match="corrupt \\(MD5 mismatch"):
        load_dataset("mnist", tmp_path)


def test_archives_in_a_folder_are_unpacked_into_the_cache_not_beside_them(tmp_path, monkeypatch):
    from torchvision import datasets

    write_mnist(tmp_path / "given", gz=True)
    raw = tmp_path / "given" / "MNIST" / "raw"
    before = sorted(p.name for p in raw.iterdir())
    # Accept the synthetic archives as genuine for this test: the MD5s are torchvision's to check.
    import hashlib

    resources = [(name, hashlib.md5((raw / name).read_bytes()).hexdigest()) for name, _ in datasets.MNIST.resources]
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    train, test = load_dataset("mnist", tmp_path / "given")
    assert len(train) == N_TRAIN and len(test) == N_TEST
    assert sorted(p.name for p in raw.iterdir()) == before
    assert (tmp_path / "cache" / "mnist-cli" / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_fashion_mnist_reads_its_own_folder(tmp_path):
    write_mnist(tmp_path, folder="FashionMNIST")
    train, _ = load_dataset("fashion-mnist", tmp_path)
    assert len(train) == N_TRAIN


def test_unpacked_files_are_read_without_torchvision_and_match_it(synthetic_root, monkeypatch):
    from torchvision import datasets

    reference = datasets.MNIST(str(synthetic_root), train=True, download=False)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # any import of it now fails
    train, test = load_dataset("mnist", synthetic_root)
    assert torch.equal(train.images, reference.data) and torch.equal(train.labels, reference.targets)
    assert test.images.shape == (200, 28, 28) and test.labels.dtype == torch.int64


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


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    from torchvision import datasets

    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    cfg = write_config(tmp_path / "c.yaml", data={"root": str(tmp_path / "nowhere")})
    r = invoke("train", "-c", cfg)
    assert r.exit_code == 2, r.output
    assert "MNIST_DATA_DIR" in r.stderr and "train-images-idx3-ubyte.gz" in r.stderr
