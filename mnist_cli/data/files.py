"""The dataset's files: the cache they are unpacked into, their MD5 check against torchvision's list, and the download."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import socket
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from mnist_cli.data.idx import FIX, idx_layout, unpack_gzip
from mnist_cli.disk import probe_writable
from mnist_cli.errors import DataError

CACHE_ENV = "MNIST_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 30


def ds_raw_folder(cls: type, root: Path) -> Path:
    return root / cls.__name__ / "raw"


def cache_root() -> Path:
    """Where datasets are unpacked when their own folder is read-only."""
    base = os.environ.get(CACHE_ENV) or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-cli" / "data"


def working_root(cls: type, root: Path) -> Path:
    """Where torchvision may verify, unpack and download: `root`, unless that would modify given archives.

    A folder that already holds the unpacked files is used as is. A folder holding only the .gz
    archives is left untouched (it may be shared or read-only): they are linked into a cache and
    unpacked there. Otherwise downloads go to `root` when it is writable, else to the cache.
    """
    raw = ds_raw_folder(cls, root)
    names = [name for name, _ in cls.resources]
    if all((raw / n.removesuffix(".gz")).is_file() for n in names):
        return root
    if not any((raw / n).is_file() for n in names):
        with contextlib.suppress(OSError):
            probe_writable(raw)
            return root
    work = cache_root()
    work_raw = ds_raw_folder(cls, work)
    try:
        work_raw.mkdir(parents=True, exist_ok=True)
        for name in names:
            src, link = raw / name, work_raw / name
            if src.is_file():
                _link(link, src.resolve())
    except OSError as e:
        raise DataError(
            f"cannot prepare the dataset cache {work_raw} ({e.strerror or e}); set {CACHE_ENV} to a writable folder"
        ) from None
    return work


def _link(link: Path, target: Path) -> None:
    """Make `link` point at `target`, atomically: concurrent first runs may do the same at the same moment.

    A link already pointing there is left alone; a stale one is replaced by renaming a fresh link over it, so a rival
    reading through it never finds it missing.
    """
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    temp = link.with_name(f".{link.name}.{os.getpid()}.{secrets.token_hex(4)}.link")
    temp.symlink_to(target)
    try:
        os.replace(temp, link)
    except OSError:
        temp.unlink(missing_ok=True)
        raise


def check_archives(cls: type, root: Path, work_root: Path) -> None:
    """Fail with the file's name if a present .gz does not match torchvision's MD5; unpack the good ones atomically."""
    from torchvision.datasets.utils import check_integrity

    raw = ds_raw_folder(cls, work_root)
    if all((raw / name.removesuffix(".gz")).is_file() for name, _ in cls.resources):
        return
    for name, md5 in cls.resources:
        path = raw / name
        if path.exists() and not check_integrity(str(path), md5):
            shown = ds_raw_folder(cls, root) / name
            raise DataError(f"{shown} is corrupt (MD5 mismatch, expected {md5}); replace it or delete it to download again")
    for name, _ in cls.resources:
        unpacked = raw / name.removesuffix(".gz")
        if (raw / name).exists() and not unpacked.exists():
            unpack_gzip(raw / name, unpacked, *idx_layout(name))


def missing_message(cls: type, root: Path, e: Exception) -> str:
    raw = ds_raw_folder(cls, root)
    missing = [name for name, _ in cls.resources if not (raw / name).exists()]
    # torchvision's message is a header ("Error downloading X:") and then what each mirror answered.
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    reason = lines[-1] if lines else type(e).__name__
    names = ", ".join(missing or [name for name, _ in cls.resources])
    return (
        f"{cls.__name__} data not found in {raw}/ and the download failed ({reason}). "
        f"Put {names} there, or set MNIST_DATA_DIR to the folder that holds {cls.__name__}/raw/"
    )


def fetch(cls: type, root: Path) -> None:
    """Download and unpack the archives into a temporary folder; move them to root/<name>/raw/ only once all arrived,
    so a failed download leaves no folder behind (a data.root that was never a dataset's stays as it was)."""
    with tempfile.TemporaryDirectory(prefix="mnist-cli-download-") as tmp, _quiet_network():
        cls(tmp, train=True, download=True)  # fetches and unpacks every resource, train and test
        got, raw = ds_raw_folder(cls, Path(tmp)), ds_raw_folder(cls, root)
        raw.mkdir(parents=True, exist_ok=True)
        for name, _ in cls.resources:
            for file in (name, name.removesuffix(".gz")):
                if not (raw / file).exists():
                    shutil.move(got / file, raw / file)


def same_as_archive(path: Path, data: bytes) -> None:
    """Refuse an unpacked file whose bytes are not what its .gz beside it holds (edited after unpacking).

    The gzip trailer holds the CRC-32 and length of what it unpacks to: the check costs a CRC over bytes already read
    (~20 ms for MNIST's 47 MB of training images), not a decompression.
    """
    archive = path.with_name(path.name + ".gz")
    try:
        with open(archive, "rb") as f:
            f.seek(-8, os.SEEK_END)
            crc, size = struct.unpack("<II", f.read(8))
    except OSError:
        return  # no archive beside it (given unpacked): nothing to compare with
    if (crc, size) != (zlib.crc32(data), len(data) & 0xFFFFFFFF):
        raise DataError(f"{path} is not what {archive.name} beside it unpacks to (changed after unpacking); {FIX}")


@contextlib.contextmanager
def _quiet_network() -> Iterator[None]:
    """torchvision prints download chatter to stdout and waits on sockets forever; the core never prints."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        socket.setdefaulttimeout(previous)
