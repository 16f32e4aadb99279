"""A folder of one's own images: one subfolder per class (torchvision's ImageFolder layout, class names = folder names,
sorted). Each image is prepared as `mnist predict` prepares a person's image, once: the tensors are cached in one .pt
per folder, keyed by the files' names, sizes and mtimes, so a changed file makes them again (and replaces the old one).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import torch

from mnist_cli.data.catalog import IMAGE_SIDE, dataset_info
from mnist_cli.data.datasets import Split, class_names, load_dataset, stratified_split
from mnist_cli.data.files import cache_root
from mnist_cli.disk import atomic_write, os_reason
from mnist_cli.errors import DataError, ImageError, MnistError

TEST_FRACTION = 0.2  # without data.test_root: this stratified share of the folder is the test split
SPLIT_SEED = 42  # fixed, not the run's seed: every run of a folder is tested on the same images (as digits')
SHOWN_BAD_FILES = 5  # a refusal names this many unusable files, then counts the rest
SKIP_HINT = "set data.skip_bad_files: true to go on without them"


def folder_classes(root: Path) -> list[str]:
    """The class names: `root`'s subfolders (hidden ones aside), sorted."""
    try:
        names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    except OSError as e:
        raise DataError(f"cannot read the folder dataset {root} ({os_reason(e)})") from None
    if not names:
        raise DataError(f"{root} holds no class folders; put each class's images in {root}/<class name>/")
    return names


def load_folder(root: Path, test_root: Path | None, skip_bad: bool) -> tuple[Split, Split]:
    """(train, test): the folder, and `test_root` or else a stratified TEST_FRACTION of it."""
    classes = folder_classes(root)
    data = prepared_folder(root, classes, skip_bad)
    if test_root is not None:
        return data, prepared_folder(Path(test_root), classes, skip_bad)
    return stratified_split(data, TEST_FRACTION, SPLIT_SEED, classes, "test")


def prepared_folder(root: Path, classes: list[str], skip_bad: bool = False, hint: str = SKIP_HINT) -> Split:
    """Every usable image under root/<class>/ (nested folders too) as uint8 (N, 28, 28), labels by `classes`' order.

    Unusable files (unreadable, not an image, no ink) refuse the whole folder in one line unless `skip_bad`.
    """
    found = folder_classes(root)
    strangers = [c for c in found if c not in classes]
    if strangers:
        raise DataError(f"{root}: class folders {', '.join(strangers)} are not among the model's classes ({', '.join(classes)})")
    files = [(f, classes.index(c)) for c in found for f in _image_files(root / c)]
    cached = _cached(root, files)
    bad = cached["bad"]
    if bad and not skip_bad:
        listed = "; ".join(f"{name} ({reason})" for name, reason in bad[:SHOWN_BAD_FILES])
        more = f"; and {len(bad) - SHOWN_BAD_FILES} more" if len(bad) > SHOWN_BAD_FILES else ""
        raise DataError(f"{len(bad)} file(s) in {root} cannot be used: {listed}{more}; {hint}")
    split = Split(cached["images"], cached["labels"])
    empty = [c for i, c in enumerate(classes) if c in found and not (split.labels == i).any()]
    if empty or not len(split):
        raise DataError(f"{root}: no usable images in class folder(s) {', '.join(empty or found)}")
    return split


def _image_files(folder: Path) -> list[Path]:
    """Every file under `folder`, nested folders included, sorted; hidden files (.DS_Store) aside."""
    out = []
    for here, dirs, names in os.walk(folder, onerror=_raise, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(here) / n for n in sorted(names) if not n.startswith(".")]
    return out


def _raise(e: OSError) -> None:
    raise DataError(f"cannot read {e.filename} ({os_reason(e)})")


def _cached(root: Path, files: list[tuple[Path, int]]) -> dict:
    """The prepared tensors of `files`, from the cache when no file changed since they were made."""
    try:
        listing = [(str(f.relative_to(root)), label, f.stat().st_size, f.stat().st_mtime_ns) for f, label in files]
    except OSError as e:
        raise DataError(f"cannot read {e.filename} ({os_reason(e)})") from None
    folder = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    path = cache_root() / "folders" / f"{folder}-{hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a truncated or foreign cache file: make it again
            pass
    made = _prepare_all(root, files)
    with contextlib.suppress(MnistError, OSError):  # a cache that cannot be written costs time, not correctness
        atomic_write(path, lambda f: torch.save(made, f))
        for old in path.parent.glob(f"{folder}-*.pt"):  # this folder's tensors before a file changed
            if old != path:
                old.unlink()
    return made


def _prepare_all(root: Path, files: list[tuple[Path, int]]) -> dict:
    """Prepare each file as `mnist predict` does; a file that fails is kept as (name, reason)."""
    from mnist_cli.inference.image_files import IMAGE_SUFFIXES, read_source
    from mnist_cli.inference.preprocess import to_mnist

    images, labels, bad = [], [], []
    for f, label in files:
        name = str(f.relative_to(root))
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            bad.append((name, f"not an image file ({f.suffix or 'no suffix'})"))
            continue
        try:
            images.append(torch.from_numpy(to_mnist(read_source(str(f)))))
            labels.append(label)
        except ImageError as e:
            bad.append((name, str(e)))
    stacked = torch.stack(images) if images else torch.zeros((0, IMAGE_SIDE, IMAGE_SIDE), dtype=torch.uint8)
    return {"images": stacked, "labels": torch.tensor(labels, dtype=torch.int64), "bad": bad}


def evaluation_folder(root: Path, classes: list[str], input_shape: tuple[int, ...]) -> Split:
    """All of a folder, for `mnist eval --data`: its class folders must be among the model's `classes`."""
    if tuple(input_shape) != dataset_info("folder").input_shape:
        raise DataError(f"--data prepares 28x28 images as MNIST's; this model takes {'x'.join(map(str, input_shape))} inputs")
    return prepared_folder(Path(root), classes, hint="remove them or move them out of the folder")


def other_test_split(dataset: str, classes: list[str], input_shape: tuple[int, ...], root: Path | None) -> Split:
    """`mnist eval --dataset NAME`: another dataset's test split, for a model with the same classes and inputs."""
    from mnist_cli.config import default_data_root

    info = dataset_info(dataset)
    if dataset == "folder" or info.input_shape != tuple(input_shape) or class_names(dataset) != classes:
        raise DataError(f"--dataset {dataset}: its images or classes are not this model's; for a folder use --data")
    return load_dataset(dataset, root or default_data_root())[1]
