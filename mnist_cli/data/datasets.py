"""Datasets as whole uint8 tensors and the seeded train/val split."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_cli.data.catalog import IMAGE_SIDE as IMAGE_SIDE  # inference/preprocess.py reads it from here
from mnist_cli.data.catalog import dataset_info
from mnist_cli.disk import os_reason
from mnist_cli.errors import DataError


@dataclass(frozen=True)
class Split:
    """Examples uint8 (N, *shape), e.g. (N, 28, 28), (N, 8, 8) or (N, 2), and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, indices: torch.Tensor) -> Split:
        """The examples at `indices`, in the order they hold in this split."""
        kept = indices.sort().values
        return Split(self.images[kept], self.labels[kept])


@dataclass(frozen=True)
class Normalization:
    """Inputs are (raw / scale - mean) / std; mean 0, std 1 means raw / scale. `scale`: 255 for MNIST's pixels,
    16 for the 8x8 digits' counts, 1 for truth tables (the checkpoint stores it as `input_scale`)."""

    mean: float = 0.0
    std: float = 1.0
    scale: float = 255.0

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}


def normalization_for(dataset: str, normalize: bool, train: Split | None = None) -> Normalization:
    """The constants a dataset is normalised with, or the identity when `normalize` is off. A dataset without fixed
    constants (digits) takes them from `train`: all of its training part, as MNIST's come from all 60,000 images."""
    info = dataset_info(dataset)
    if not normalize:
        return Normalization(scale=info.scale)
    if info.mean is not None and info.std is not None:
        return Normalization(info.mean, info.std, info.scale)
    x = train.images.double() / info.scale
    return Normalization(round(x.mean().item(), 4), round(x.std().item(), 4), info.scale)


def class_names(dataset: str, root: Path | str | None = None) -> list[str]:
    """Human-readable class names in label order ("0".."9" for MNIST and digits, "0", "1" for truth tables)."""
    classes = dataset_info(dataset).classes
    if classes is None:  # issue 21: a folder's classes are its subfolders
        from mnist_cli.data.folder import folder_classes

        return folder_classes(Path(root))
    return list(classes)


# (dataset, resolved root, test root, skip bad files) -> (train, test) while `datasets_kept_loaded` is active; None otherwise.
_kept: dict[tuple[str, str, str | None, bool], tuple[Split, Split]] | None = None


@contextlib.contextmanager
def datasets_kept_loaded() -> Iterator[None]:
    """Inside, each dataset is read and checked once and its tensors handed out again (a sweep worker trains many runs);
    shared tensors, so callers must not modify them in place (training indexes and converts, never writes)."""
    global _kept
    previous, _kept = _kept, {}
    try:
        yield
    finally:
        _kept = previous


def load_dataset(
    dataset: str, root: Path, download: bool = True, test_root: Path | str | None = None, skip_bad: bool = False
) -> tuple[Split, Split]:
    """(train, test) of `dataset` (MNIST-style ones under `root`, checked, downloaded if missing); `test_root` and
    `skip_bad` concern a folder dataset (data.test_root, data.skip_bad_files)."""
    key = (dataset, str(Path(root).resolve()), str(test_root) if test_root else None, skip_bad)
    if _kept is not None and key in _kept:
        return _kept[key]
    loaded = _load(dataset, Path(root), download, Path(test_root) if test_root else None, skip_bad)
    if _kept is not None:
        _kept[key] = loaded
    return loaded


def _load(dataset: str, root: Path, download: bool, test_root: Path | None, skip_bad: bool) -> tuple[Split, Split]:
    if dataset == "folder":  # issue 21: one's own images
        from mnist_cli.data.folder import load_folder

        return load_folder(root, test_root, skip_bad)
    if dataset_info(dataset).torchvision_name is None:
        from mnist_cli.data.small import load_small

        return load_small(dataset)
    from mnist_cli.data.files import load_files

    try:
        return load_files(dataset, root, download)
    except OSError as e:  # a folder on the way that cannot be searched or read, a name too long
        raise DataError(f"cannot read the dataset at {e.filename or root} ({os_reason(e)})") from None


def load_split(
    dataset: str, root: Path, split: str, val_size: int | float, seed: int, test_root: str | None = None, skip_bad: bool = False
) -> Split:
    """The test split, or the exact validation split a run with this val_size and seed held out."""
    train_full, test = load_dataset(dataset, root, test_root=test_root, skip_bad=skip_bad)
    if split == "test":
        return test
    classes = class_names(dataset, root) if dataset == "folder" else None
    _, val = split_train_val(train_full, val_size, seed, classes)
    if not len(val):
        raise DataError(f"this checkpoint was trained with data.val_size 0 on {dataset}: it has no validation split")
    return val


def split_train_val(train: Split, val_size: int | float, seed: int, classes: list[str] | None = None) -> tuple[Split, Split]:
    """A deterministic (train, val) split of the training set from `seed`; stratified by class when `classes` are given;
    a float val_size is a fraction."""
    if classes is not None:  # issue 21: a folder dataset
        return stratified_split(train, val_size, seed, classes, "validation")
    val_size = round(val_size * len(train)) if isinstance(val_size, float) else val_size
    if val_size >= len(train):
        raise DataError(f"data.val_size ({val_size}) leaves no training images out of {len(train)}")
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    return train.subset(perm[val_size:]), train.subset(perm[:val_size])


def stratified_split(split: Split, size: int | float, seed: int, classes: list[str], part: str) -> tuple[Split, Split]:
    """(rest, held out): `size` examples (a fraction below 1, or a count) held out in each class's proportion, seeded."""
    from sklearn.model_selection import train_test_split

    if not size:
        return split, split.subset(torch.arange(0))
    counts = torch.bincount(split.labels, minlength=len(classes))
    small = [f"{c} ({int(n)})" for c, n in zip(classes, counts, strict=True) if 0 < n < 2]
    if small:
        raise DataError(f"too few images to split off a {part} part (at least 2 per class): class {', '.join(small)}")
    try:
        rest, held = train_test_split(
            torch.arange(len(split)).numpy(), test_size=size, stratify=split.labels.numpy(), random_state=seed % 2**32
        )
    except ValueError as e:
        raise DataError(f"cannot split off a {part} part of {size} from {len(split)} images: {e}") from None
    return split.subset(torch.from_numpy(rest)), split.subset(torch.from_numpy(held))
