"""IDX files (the MNIST format): checked by header and length so a bad file is named, never trained on."""

from __future__ import annotations

import gzip
import math
import shutil
import struct
import zlib
from pathlib import Path

from mnist_cli.disk import atomic_write
from mnist_cli.errors import DataError

IMAGE_SIDE = 28  # pixels; every MNIST-style dataset here holds 28x28 grayscale images
UBYTE = 0x08  # IDX type code of unsigned bytes, the only type MNIST-style files use
CHUNK = 1 << 20
FIX = "replace it, or delete it to have its .gz unpacked (or downloaded) again"


def idx_names(part: str) -> tuple[str, str]:
    """The unpacked (images, labels) files of one split, `train` or `t10k`, as torchvision names them (add .gz)."""
    return f"{part}-images-idx3-ubyte", f"{part}-labels-idx1-ubyte"


def idx_layout(name: str) -> tuple[int, tuple[int, ...]]:
    """(dims, item shape) of an MNIST-style file: images are N x 28 x 28, labels N."""
    return (3, (IMAGE_SIDE, IMAGE_SIDE)) if "images" in name else (1, ())


def check_idx(path: Path, ndim: int, item_shape: tuple[int, ...] = (), shown: Path | str | None = None) -> int:
    """Raise DataError naming the file unless it is a uint8 IDX file of `ndim` dims and exact length; return its count."""
    shown = shown or path
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(4 + 4 * ndim)
    except OSError as e:
        raise DataError(f"{shown}: cannot read ({e.strerror or e})") from None
    if len(header) < 4 or header[:2] != b"\0\0":
        raise DataError(f"{shown} is not an IDX file (bad magic number {header[:4].hex() or 'none'}); {FIX}")
    if header[2] != UBYTE or header[3] != ndim:
        raise DataError(
            f"{shown} has the wrong IDX header (type 0x{header[2]:02x}, {header[3]} dims; expected 0x08, {ndim}); {FIX}"
        )
    if len(header) < 4 + 4 * ndim:
        raise DataError(f"{shown} is truncated inside its header; {FIX}")
    dims = struct.unpack(f">{ndim}I", header[4:])
    if tuple(dims[1:]) != tuple(item_shape):
        shape = "x".join(map(str, dims[1:]))
        raise DataError(f"{shown} holds items of {shape}, expected {'x'.join(map(str, item_shape))}; {FIX}")
    expected = len(header) + math.prod(dims)
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise DataError(f"{shown} is {what} ({size:,} bytes, expected {expected:,}); {FIX}")
    return dims[0]


def unpack_gzip(archive: Path, dest: Path, ndim: int, item_shape: tuple[int, ...]) -> None:
    """Decompress `archive` to `dest` through a temporary file, checked before it replaces `dest`; a kill leaves no half file."""

    def write(out) -> None:
        try:
            with gzip.open(archive, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise DataError(
                f"{archive} is not a complete gzip archive ({e}); replace it or delete it to download again"
            ) from None

    # 0o644: the dataset is not private, whatever the umask of the run that unpacked it.
    atomic_write(dest, write, mode=0o644, check=lambda tmp: check_idx(tmp, ndim, item_shape, shown=f"{archive} (unpacked)"))
