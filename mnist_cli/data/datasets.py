"""Datasets as whole uint8 tensors (checked, read without torchvision when unpacked) and the seeded train/val split.

MNIST-style files are read here; scikit-learn's digits and the truth tables come from `data/small.py`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_cli.data.catalog import dataset_info
from mnist_cli.data.files import (
    cache_root,
    check_archives,
    ds_raw_folder,
    fetch,
    missing_message,
    same_as_archive,
    working_root,
)
from mnist_cli.data.idx import IMAGE_SIDE, check_idx, idx_layout, idx_names
from mnist_cli.disk import os_reason
from mnist_cli.errors import DataError

PARTS = ("train", "t10k")  # the two splits of an MNIST-style file set, as its file names start


@dataclass(frozen=True)
class Split:
    """Examples uint8 (N, *shape), e.g. (N, 28, 28), (N, 8, 8) or (N, 2), and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


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
    """The constants a dataset is normalised with, or the identity when `normalize` is off.

    A dataset without fixed constants (digits) takes them from `train`, its training part (before validation
    is held out, as MNIST's constants come from all 60,000 training images).
    """
    info = dataset_info(dataset)
    if not normalize:
        return Normalization(scale=info.scale)
    if info.mean is not None and info.std is not None:
        return Normalization(info.mean, info.std, info.scale)
    if train is None:
        raise ValueError(f"{dataset}'s normalisation comes from its training part; pass it")
    x = train.images.double() / info.scale
    return Normalization(round(x.mean().item(), 4), round(x.std().item(), 4), info.scale)


def class_names(dataset: str, root: Path | str | None = None) -> list[str]:
    """Human-readable class names in label order ("0".."9" for MNIST and digits, "0", "1" for truth tables)."""
    info = dataset_info(dataset)
    if info.classes is not None:
        return list(info.classes)
    if dataset == "folder":  # issue 21: a folder's classes are its subfolders
        from mnist_cli.data.folder import folder_classes

        return folder_classes(Path(root))
    return list(_torchvision_class(dataset).classes)


# (dataset, resolved root, test root, skip bad files) -> (train, test) while `datasets_kept_loaded` is active; None otherwise.
_kept: dict[tuple[str, str, str | None, bool], tuple[Split, Split]] | None = None


@contextlib.contextmanager
def datasets_kept_loaded() -> Iterator[None]:
    """Inside, each dataset is read and checked once and its tensors handed out again (a sweep worker trains many runs).

    The tensors are shared, so callers must not modify them in place (training indexes and converts, never writes).
    """
    global _kept
    previous, _kept = _kept, {}
    try:
        yield
    finally:
        _kept = previous


def load_dataset(
    dataset: str, root: Path, download: bool = True, test_root: Path | str | None = None, skip_bad: bool = False
) -> tuple[Split, Split]:
    """Return (train, test) for `dataset` (MNIST-style ones under `root`, verifying and if needed downloading the files).

    `test_root` and `skip_bad` concern a folder dataset (data.test_root, data.skip_bad_files).
    """
    key = (dataset, str(Path(root).resolve()), str(test_root) if test_root else None, skip_bad)
    if _kept is not None and key in _kept:
        return _kept[key]
    if dataset == "folder":  # issue 21: one's own images, data/folder.py
        from mnist_cli.data.folder import load_folder

        loaded = load_folder(Path(root), Path(test_root) if test_root else None, skip_bad)
    else:
        loaded = _load_any(dataset, root, download)
    if _kept is not None:
        _kept[key] = loaded
    return loaded


def _load_any(dataset: str, root: Path, download: bool) -> tuple[Split, Split]:
    """A small dataset from its package, or an MNIST-style one from files; an unreadable folder is one DataError."""
    if dataset_info(dataset).torchvision_name is None:
        from mnist_cli.data.small import load_small

        return load_small(dataset)
    try:
        return _load_dataset(dataset, Path(root), download)
    except OSError as e:  # a folder on the way that cannot be searched or read, a name too long
        where = e.filename or root
        raise DataError(f"cannot read the dataset at {where} ({os_reason(e)})") from None


def _load_dataset(dataset: str, root: Path, download: bool) -> tuple[Split, Split]:
    unpacked = _read_unpacked(dataset, root)
    if unpacked is not None:
        return unpacked
    cls = _torchvision_class(dataset)
    work_root = working_root(cls, root)
    check_archives(cls, root, work_root)
    raw = ds_raw_folder(cls, work_root)
    if not all((raw / name).is_file() for part in PARTS for name in idx_names(part)):
        if not download:
            raise DataError(
                f"{cls.__name__} data not found in {ds_raw_folder(cls, root)}/ (a dry run does not download it; "
                f"a run would); or set MNIST_DATA_DIR to the folder that holds {cls.__name__}/raw/"
            )
        try:
            fetch(cls, work_root)
        except (RuntimeError, OSError) as e:
            raise DataError(missing_message(cls, root, e)) from None
    train, test = (_read_split(raw, part) for part in PARTS)
    return train, test


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
        from mnist_cli.data.folder import stratified_split

        return stratified_split(train, val_size, seed, classes, "validation")
    val_size = round(val_size * len(train)) if isinstance(val_size, float) else val_size
    if val_size >= len(train):
        raise DataError(f"data.val_size ({val_size}) leaves no training images out of {len(train)}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(train), generator=g)
    val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
    return (
        Split(train.images[train_idx], train.labels[train_idx]),
        Split(train.images[val_idx], train.labels[val_idx]),
    )


def _read_unpacked(dataset: str, root: Path) -> tuple[Split, Split] | None:
    """(train, test) straight from IDX files torchvision already unpacked, checked; None if they aren't there.

    Importing torchvision costs ~1 s of a ~8 s training command, so once the files are unpacked (in
    `root`, or in the cache for archives of this very `root`) they are read here without it.
    """
    name = dataset_info(dataset).torchvision_name
    folders = [root / name / "raw"]
    cached = cache_root() / name / "raw"
    files = [f for part in PARTS for f in idx_names(part)]
    archives = [f"{f}.gz" for f in files]
    if all((cached / a).is_symlink() and (cached / a).resolve() == (root / name / "raw" / a).resolve() for a in archives):
        folders.append(cached)
    for folder in folders:
        if all((folder / f).is_file() for f in files):
            train, test = (_read_split(folder, part) for part in PARTS)
            return train, test
    return None


def _read_split(raw: Path, part: str) -> Split:
    """One split's images and labels files, checked by `_check_pair` and `_checked` like torchvision's path."""
    images_path, labels_path = (raw / name for name in idx_names(part))
    _check_pair(images_path, labels_path)
    images, labels = (_idx_tensor(p) for p in (images_path, labels_path))
    return _checked(images, labels.long(), raw, part)


def _idx_tensor(path: Path) -> torch.Tensor:
    """A uint8 IDX file whose header `check_idx` has accepted, as a tensor; it must still be what its .gz holds."""
    data = path.read_bytes()
    same_as_archive(path, data)
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(data[3])]
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=4 + 4 * data[3]).view(shape)


def _torchvision_class(dataset: str) -> type:
    from torchvision import datasets

    return getattr(datasets, dataset_info(dataset).torchvision_name)


def _check_pair(images: Path, labels: Path) -> None:
    """Headers, dimensions and exact lengths of an images/labels pair, and that their counts agree."""
    n_images, n_labels = check_idx(images, *idx_layout(images.name)), check_idx(labels, *idx_layout(labels.name))
    if n_images != n_labels:
        raise DataError(f"{images} holds {n_images:,} images but {labels} holds {n_labels:,} labels")


def _checked(images: torch.Tensor, labels: torch.Tensor, raw: Path, part: str, classes: int = 10) -> Split:
    """The tensors as a Split, refusing shapes and labels no MNIST-style file has."""
    if tuple(images.shape[1:]) != (IMAGE_SIDE, IMAGE_SIDE) or len(images) != len(labels) or not len(labels):
        raise DataError(f"{raw}/{part}-*-ubyte: {tuple(images.shape)} images for {len(labels)} labels")
    if int(labels.min()) < 0 or int(labels.max()) >= classes:
        raise DataError(f"{raw}/{part}-labels-idx1-ubyte holds label {int(labels.max())}, outside 0..{classes - 1}")
    return Split(images.contiguous(), labels)
