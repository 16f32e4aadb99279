"""Loading, splitting and batching the data as whole tensors; damaged dataset files are named, never trained on."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import sys

import pytest
import torch
from conftest import N_TEST, N_TRAIN, REAL_DATA, assert_clean_error, invoke, require_real_data, write_config, write_mnist

from mnist_cli.data.catalog import MNIST_MEAN, MNIST_STD
from mnist_cli.data.datasets import Normalization, load_dataset, normalization_for, split_train_val
from mnist_cli.data.loader import to_inputs
from mnist_cli.errors import DataError


@pytest.mark.parametrize(("dataset", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_unpacked_files_are_read_without_torchvision_as_it_reads_them(dataset, folder, tmp_path, monkeypatch):
    from torchvision import datasets

    write_mnist(tmp_path, folder=folder)
    reference = getattr(datasets, folder)(str(tmp_path), train=False, download=False)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # any import of it now fails
    train, test = load_dataset(dataset, tmp_path)
    assert train.images.shape == (N_TRAIN, 28, 28) and train.images.dtype == torch.uint8 and len(test) == N_TEST
    assert torch.equal(test.images, reference.data) and torch.equal(test.labels, reference.targets)


def test_split_is_deterministic_disjoint_and_complete(synthetic_root):
    train, _ = load_dataset("mnist", synthetic_root)
    (a_train, a_val), (_, b_val), (_, c_val) = (split_train_val(train, 100, seed=s) for s in (3, 3, 4))
    assert torch.equal(a_val.images, b_val.images) and not torch.equal(a_val.images, c_val.images)
    assert len({bytes(x.numpy()) for x in torch.cat([a_train.images, a_val.images])}) == len(a_train) + len(a_val) == N_TRAIN
    with pytest.raises(DataError, match="leaves no training images"):
        split_train_val(train, N_TRAIN, seed=0)


def test_to_inputs_normalises_with_the_dataset_constants():
    x = torch.tensor([[0, 255]], dtype=torch.uint8)
    out = to_inputs(x, normalization_for("mnist", True))
    assert torch.allclose(out, torch.tensor([[-MNIST_MEAN / MNIST_STD, (1 - MNIST_MEAN) / MNIST_STD]]))
    assert torch.allclose(to_inputs(x, Normalization()), torch.tensor([[0.0, 1.0]]))


def test_missing_data_is_one_line_naming_the_files_and_where(tmp_path, monkeypatch):
    from torchvision import datasets

    # A closed local port: the download is really attempted and fails at once, without the network.
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    r = invoke("train", "-c", write_config(tmp_path / "c.yaml", data={"root": str(tmp_path / "empty")}))
    assert_clean_error(r, "train-images-idx3-ubyte.gz", "MNIST_DATA_DIR", str(tmp_path / "empty" / "MNIST" / "raw"))
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
        ("train-labels-idx1-ubyte", lambda b: b[:4] + (300).to_bytes(4, "big") + b[8:308], "holds 600 images but"),
    ],
)
def test_corrupt_unpacked_files_are_named(tmp_path, synthetic_root, tiny_config, name, change, message):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    path = root / "MNIST" / "raw" / name
    path.write_bytes(change(path.read_bytes()))
    r = invoke("train", "-c", tiny_config, "--set", f"data.root={root}", "--out", tmp_path / "run")
    assert_clean_error(r, name, message)
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: gzip.compress(data), None),  # genuine: unpacked into the cache, never beside the archives
        (lambda data: gzip.compress(data)[:-30], "not a complete gzip archive"),
        (lambda data: b"not gzip at all" * 10, "not a complete gzip archive"),
        (lambda data: gzip.compress(b"\0\0\x08\x01" + data[4:]), "wrong IDX header"),
        (lambda data: gzip.compress(data[:-100]), "is truncated"),
    ],
)
def test_archives_are_unpacked_into_the_cache_and_bad_ones_named(tmp_path, tiny_config, monkeypatch, change, message):
    from torchvision import datasets

    raw = write_mnist(tmp_path / "gz", gz=True) / "MNIST" / "raw"
    archive, before = raw / "t10k-images-idx3-ubyte.gz", sorted(p.name for p in raw.iterdir())
    archive.write_bytes(change(gzip.decompress(archive.read_bytes())))
    # Accept these archives as genuine, as if a mirror published them: the MD5s are torchvision's to check.
    resources = [(n, hashlib.md5((raw / n).read_bytes()).hexdigest()) for n, _ in datasets.MNIST.resources]
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    cache = tmp_path / "cache" / "mnist-cli" / "data" / "MNIST" / "raw"
    if message is None:
        assert [len(s) for s in load_dataset("mnist", tmp_path / "gz")] == [N_TRAIN, N_TEST]
        assert (cache / "t10k-images-idx3-ubyte").is_file()
    else:
        assert_clean_error(invoke("train", "-c", tiny_config, "--set", f"data.root={tmp_path / 'gz'}"), archive.name, message)
        assert not (cache / "t10k-images-idx3-ubyte").exists() and not list(cache.glob(".*.tmp"))
    assert sorted(p.name for p in raw.iterdir()) == before


@pytest.mark.parametrize("real", [False, True])
def test_an_archive_that_is_not_torchvisions_is_named(real, tmp_path, tiny_config):
    raw = tmp_path / "d" / "MNIST" / "raw"
    if real:  # a truncated download of the real labels
        require_real_data()
        raw.mkdir(parents=True)
        for path in (REAL_DATA / "MNIST" / "raw").glob("*.gz"):
            shutil.copy(path, raw)
        (raw / "t10k-labels-idx1-ubyte.gz").write_bytes((raw / "t10k-labels-idx1-ubyte.gz").read_bytes()[:-10])
    else:  # synthetic archives cannot match the real MD5s
        write_mnist(tmp_path / "d", gz=True)
    r = invoke("train", "-c", tiny_config, "--set", f"data.root={tmp_path / 'd'}")
    name = "t10k-labels-idx1-ubyte.gz" if real else "train-images-idx3-ubyte.gz"
    assert_clean_error(r, f"{name} is corrupt (MD5 mismatch")
