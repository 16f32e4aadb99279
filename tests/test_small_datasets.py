"""scikit-learn's digits and the truth tables: described in one place, split, normalised and checkpointed like MNIST."""

from __future__ import annotations

import pytest
import torch
from conftest import sign, write_config

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.config import load_config
from mnist_cli.data.catalog import DATASETS, dataset_info
from mnist_cli.data.datasets import load_dataset, normalization_for, split_train_val
from mnist_cli.data.loader import to_inputs
from mnist_cli.errors import CheckpointError, ConfigError
from mnist_cli.inference.trained import load_trained
from mnist_cli.training.loop import train


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


def test_digits_normalisation_comes_from_the_training_part():
    train_part, _ = load_dataset("digits", "unused")
    norm = normalization_for("digits", True, train_part)
    x = to_inputs(train_part.images, norm)
    assert norm.scale == 16 and abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-3
    assert normalization_for("digits", False).scale == 16
    assert normalization_for("mnist", True).as_dict() == {"mean": 0.1307, "std": 0.3081}


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
