"""Loading, splitting and batching the data as whole tensors; damaged dataset files are named, never trained on; scikit-learn's
digits and the truth tables, described in one place, split, normalised and checkpointed like MNIST."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import sys

import pytest
import torch
from conftest import N_TEST, N_TRAIN, REAL_DATA, assert_clean_error, invoke, require_real_data, sign, write_config, write_mnist

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.config import load_config
from mnist_cli.data.catalog import DATASETS, MNIST_MEAN, MNIST_STD, dataset_info
from mnist_cli.data.datasets import Normalization, load_dataset, normalization_for, split_train_val
from mnist_cli.data.loader import to_inputs
from mnist_cli.errors import CheckpointError, ConfigError, DataError
from mnist_cli.inference.trained import load_trained
from mnist_cli.training.loop import train


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


def test_to_inputs_normalises_with_the_dataset_constants_and_digits_with_its_training_part():
    x = torch.tensor([[0, 255]], dtype=torch.uint8)
    out = to_inputs(x, normalization_for("mnist", True))
    assert torch.allclose(out, torch.tensor([[-MNIST_MEAN / MNIST_STD, (1 - MNIST_MEAN) / MNIST_STD]]))
    assert torch.allclose(to_inputs(x, Normalization()), torch.tensor([[0.0, 1.0]]))
    assert normalization_for("mnist", True).as_dict() == {"mean": 0.1307, "std": 0.3081}
    train_part, _ = load_dataset("digits", "unused")
    norm = normalization_for("digits", True, train_part)
    x = to_inputs(train_part.images, norm)
    assert norm.scale == 16 and abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-3
    assert normalization_for("digits", False).scale == 16


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


# --- scikit-learn's digits and the truth tables ---


def test_digits_split_80_20_stratified_and_fixed():
    train_part, test = load_dataset("digits", "unused")
    assert (len(train_part), len(test)) == (1437, 360)
    assert train_part.images.shape[1:] == (8, 8) and train_part.images.dtype == torch.uint8
    assert int(train_part.images.max()) == 16
    # Stratified: each class is 20% of its digits in the test part, to within one digit.
    for k in range(10):
        n_test, n_all = int((test.labels == k).sum()), int((test.labels == k).sum() + (train_part.labels == k).sum())
        assert abs(n_test - 0.2 * n_all) <= 1
    again, _ = load_dataset("digits", "unused")
    assert torch.equal(again.images, train_part.images)


def test_truth_tables_hold_their_four_points():
    for name, outputs in (("xor", [0, 1, 1, 0]), ("and", [0, 0, 0, 1]), ("or", [0, 1, 1, 1])):
        train_part, test = load_dataset(name, "unused")
        assert train_part.images.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
        assert train_part.labels.tolist() == test.labels.tolist() == outputs
    assert dataset_info("xor").in_features == 2 and dataset_info("digits").in_features == 64


def test_dataset_dependent_defaults_and_refusals():
    assert load_config(None, ["data.dataset=xor"]).data.val_size == 0
    assert load_config(None, ["data.dataset=digits"]).data.val_size == 144
    assert load_config(None).data.val_size == 5000
    with pytest.raises(ConfigError, match="val_size 10: xor trains on all four points"):
        load_config(None, ["data.dataset=xor", "data.val_size=10"])
    with pytest.raises(ConfigError, match="augment warps images; or is a truth table"):
        load_config(None, ["data.dataset=or", "data.augment.rotate=10"])
    with pytest.raises(ConfigError, match=r"data\.dataset: Input should be"):  # not a name: refused, not a TypeError
        load_config(None, ["data.dataset=[]"])
    held_out = split_train_val(load_dataset("digits", "unused")[0], 144, 0)
    assert [len(s) for s in held_out] == [1293, 144]


@pytest.mark.parametrize("name", sorted(DATASETS.keys() - {"fashion-mnist", "kmnist", "folder"}))  # folder: test_folder_data
def test_checkpoints_store_the_input_shape_and_scale_of_their_dataset(name, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", data={"dataset": name, "val_size": 0}, train={"epochs": 1})
    train(load_config(cfg), tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    info = dataset_info(name)
    assert ckpt["input_shape"] == list(info.input_shape) and ckpt["input_scale"] == info.scale
    trained = load_trained(tmp_path / "run" / "best.pt")
    assert trained.in_features == info.in_features and trained.normalization.scale == info.scale
    assert trained.architecture.startswith(f"{info.in_features}-")
    ckpt["input_shape"] = [1, 28, 28] if name != "mnist" else [2]
    torch.save(sign(ckpt), tmp_path / "bad.pt")  # a valid digest: the field check itself must refuse it
    with pytest.raises(CheckpointError, match=f"input_shape .* the shape of {name}"):
        load_checkpoint(tmp_path / "bad.pt")
