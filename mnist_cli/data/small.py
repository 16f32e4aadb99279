"""The datasets that fit in a few kilobytes: scikit-learn's 8x8 digits and the XOR, AND and OR truth tables."""

from __future__ import annotations

import torch

from mnist_cli.data.catalog import DIGIT_CLASSES, TABLE_INPUTS, TABLES
from mnist_cli.data.datasets import Split, stratified_split

DIGITS_TEST_FRACTION = 0.2  # the tutorial's 80/20 split
# Fixed, not the run's seed: every run, whatever its seed, is tested on the same 360 digits (as on MNIST's t10k).
DIGITS_SPLIT_SEED = 42


def load_small(dataset: str) -> tuple[Split, Split]:
    """(train, test) of a dataset that ships with the code or its dependencies: nothing to download."""
    if dataset == "digits":
        return load_digits_split()
    table = truth_table(dataset)
    return table, table  # the four points are the whole problem: trained on and tested on


def truth_table(name: str) -> Split:
    """The four points (0,0), (0,1), (1,0), (1,1) as uint8 (4, 2) and the table's outputs (4,)."""
    return Split(torch.tensor(TABLE_INPUTS, dtype=torch.uint8), torch.tensor(TABLES[name], dtype=torch.int64))


def load_digits_split() -> tuple[Split, Split]:
    """scikit-learn's 1,797 digits as uint8 (N, 8, 8) in 0..16, split 80/20, stratified by class, seeded."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # float64 counts 0..16 -> exact in uint8
    every = Split(torch.from_numpy(digits.images.astype("uint8")), torch.from_numpy(digits.target.astype("int64")))
    return stratified_split(every, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED, list(DIGIT_CLASSES), "test")
