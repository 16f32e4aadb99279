"""An MNIST-style dataset's files: read as they are once unpacked, else their archives checked against torchvision's
MD5s and unpacked (into a cache when their folder holds archives we must not touch), else downloaded."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import socket
import tempfile
from pathlib import Path

from mnist_cli.data.catalog import dataset_info
from mnist_cli.data.datasets import Split
from mnist_cli.data.idx import idx_names, read_idx, unpack_gzip
from mnist_cli.disk import probe_writable
from mnist_cli.errors import DataError

CACHE_ENV = "MNIST_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 30
PARTS = ("train", "t10k")  # the two splits of an MNIST-style file set, as its file names start
CLASSES = 10  # every MNIST-style dataset here
FILES = [name for part in PARTS for name in idx_names(part)]


def cache_root() -> Path:
    """Where datasets are unpacked when their own folder is read-only."""
    base = os.environ.get(CACHE_ENV) or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-cli" / "data"


def load_files(dataset: str, root: Path, download: bool) -> tuple[Split, Split]:
    """(train, test) from root/<Name>/raw/, or from the cache that unpacked this very folder's archives.

    Once unpacked the files are read without torchvision (importing it costs ~1 s of a ~8 s training command).
    """
    name = dataset_info(dataset).torchvision_name
    given, cached = root / name / "raw", cache_root() / name / "raw"
    if _complete(given):
        raw = given
    elif _complete(cached) and all(_links(cached / f"{f}.gz", given / f"{f}.gz") for f in FILES):
        raw = cached
    else:
        raw = _prepare(name, given, cached, download)
    return _read_split(raw, "train"), _read_split(raw, "t10k")


def _complete(raw: Path) -> bool:
    return all((raw / f).is_file() for f in FILES)


def _links(link: Path, target: Path) -> bool:
    return link.is_symlink() and link.resolve() == target.resolve()


def _prepare(name: str, given: Path, cached: Path, download: bool) -> Path:
    """The folder where the files are unpacked: `given`, or the cache when `given` holds archives or is read-only."""
    from torchvision import datasets
    from torchvision.datasets.utils import check_integrity

    cls = getattr(datasets, name)
    archives = [archive for archive, _ in cls.resources]
    raw = _linked(given, cached, archives) if any((given / a).is_file() for a in archives) or not _writable(given) else given
    if not _complete(raw):
        for archive, md5 in cls.resources:
            if (raw / archive).exists() and not check_integrity(str(raw / archive), md5):
                raise DataError(
                    f"{given / archive} is corrupt (MD5 mismatch, expected {md5}); replace it or delete it to download again"
                )
        for archive in archives:
            if (raw / archive).exists() and not (raw / archive).with_suffix("").exists():
                unpack_gzip(raw / archive)
    if _complete(raw):
        return raw
    if not download:
        raise DataError(
            f"{name} data not found in {given}/ (a dry run does not download it; a run would); "
            f"or set MNIST_DATA_DIR to the folder that holds {name}/raw/"
        )
    try:
        _fetch(cls, raw)
    except (RuntimeError, OSError) as e:
        # torchvision's message is a header ("Error downloading X:") and then what each mirror answered.
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        missing = [a for a in archives if not (given / a).exists()] or archives
        raise DataError(
            f"{name} data not found in {given}/ and the download failed ({lines[-1] if lines else type(e).__name__}). "
            f"Put {', '.join(missing)} there, or set MNIST_DATA_DIR to the folder that holds {name}/raw/"
        ) from None
    return raw


def _writable(folder: Path) -> bool:
    try:
        probe_writable(folder)
    except OSError:
        return False
    return True


def _linked(given: Path, raw: Path, archives: list[str]) -> Path:
    """The cache folder `raw` with links to `given`'s archives, which stay untouched (shared, or read-only)."""
    try:
        raw.mkdir(parents=True, exist_ok=True)
        for archive in archives:
            if (given / archive).is_file():
                _link(raw / archive, (given / archive).resolve())
    except OSError as e:
        raise DataError(
            f"cannot prepare the dataset cache {raw} ({e.strerror or e}); set {CACHE_ENV} to a writable folder"
        ) from None
    return raw


def _link(link: Path, target: Path) -> None:
    """Point `link` at `target` atomically, as concurrent first runs may: a fresh link renamed over a stale one."""
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    temp = link.with_name(f".{link.name}.{os.getpid()}.{secrets.token_hex(4)}.link")
    temp.symlink_to(target)
    try:
        os.replace(temp, link)
    except OSError:
        temp.unlink(missing_ok=True)
        raise


def _fetch(cls: type, raw: Path) -> None:
    """Download and unpack into a temporary folder; move the files to `raw` only once all arrived, so a failed
    download leaves no folder behind. torchvision prints to stdout and waits on sockets forever: neither here."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="mnist-cli-download-") as tmp,
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            cls(tmp, train=True, download=True)  # fetches and unpacks every resource, train and test
            got = Path(tmp) / cls.__name__ / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            for archive, _ in cls.resources:
                for file in (archive, archive.removesuffix(".gz")):
                    if not (raw / file).exists():
                        shutil.move(got / file, raw / file)
    finally:
        socket.setdefaulttimeout(previous)


def _read_split(raw: Path, part: str) -> Split:
    """One split's checked images and labels; a pair that disagrees, or a label outside 0..9, is named."""
    images_name, labels_name = idx_names(part)
    images, labels = read_idx(raw / images_name), read_idx(raw / labels_name)
    if len(images) != len(labels):
        raise DataError(f"{raw / images_name} holds {len(images):,} images but {raw / labels_name} holds {len(labels):,} labels")
    if int(labels.max()) >= CLASSES:
        raise DataError(f"{raw / labels_name} holds label {int(labels.max())}, outside 0..{CLASSES - 1}")
    return Split(images, labels.long())
