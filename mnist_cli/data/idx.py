"""IDX files (the MNIST format): checked by header and length so a bad file is named, never trained on."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import torch

from mnist_cli.data.catalog import IMAGE_SIDE
from mnist_cli.disk import atomic_write
from mnist_cli.errors import DataError

UBYTE = 0x08  # IDX type code of unsigned bytes, the only type MNIST-style files use
FIX = "replace it, or delete it to have its .gz unpacked (or downloaded) again"


def idx_names(part: str) -> tuple[str, str]:
    """The unpacked (images, labels) files of one split, `train` or `t10k`, as torchvision names them (add .gz)."""
    return f"{part}-images-idx3-ubyte", f"{part}-labels-idx1-ubyte"


def parse_idx(data: bytes, name: str, shown: Path | str) -> torch.Tensor:
    """The bytes of the IDX file `name` as uint8 (N, 28, 28) images or (N,) labels; DataError naming `shown` if bad."""
    ndim, item_shape = (3, (IMAGE_SIDE, IMAGE_SIDE)) if "images" in name else (1, ())
    header = data[: 4 + 4 * ndim]
    if len(header) < 4 or header[:2] != b"\0\0":
        raise DataError(f"{shown} is not an IDX file (bad magic number {header[:4].hex() or 'none'}); {FIX}")
    if header[2] != UBYTE or header[3] != ndim:
        raise DataError(
            f"{shown} has the wrong IDX header (type 0x{header[2]:02x}, {header[3]} dims; expected 0x08, {ndim}); {FIX}"
        )
    if len(header) < 4 + 4 * ndim:
        raise DataError(f"{shown} is truncated inside its header; {FIX}")
    dims = struct.unpack(f">{ndim}I", header[4:])
    if dims[1:] != item_shape:
        shape = "x".join(map(str, dims[1:]))
        raise DataError(f"{shown} holds items of {shape}, expected {'x'.join(map(str, item_shape))}; {FIX}")
    expected = len(header) + math.prod(dims)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(f"{shown} is {what} ({len(data):,} bytes, expected {expected:,}); {FIX}")
    if not dims[0]:
        raise DataError(f"{shown} holds no items; {FIX}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=len(header)).view(dims)


def read_idx(path: Path) -> torch.Tensor:
    """A checked IDX file as a tensor; it must still be what the .gz beside it (if any) unpacks to."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    parsed = parse_idx(data, path.name, path)
    archive = path.with_name(path.name + ".gz")
    try:  # the gzip trailer holds the CRC-32 and length of what it unpacks to: a CRC, not a decompression
        with open(archive, "rb") as f:
            f.seek(-8, os.SEEK_END)
            trailer = struct.unpack("<II", f.read(8))
    except OSError:
        return parsed  # no archive beside it (given unpacked): nothing to compare with
    if trailer != (zlib.crc32(data), len(data) & 0xFFFFFFFF):
        raise DataError(f"{path} is not what {archive.name} beside it unpacks to (changed after unpacking); {FIX}")
    return parsed


def unpack_gzip(archive: Path) -> None:
    """Decompress `archive` beside itself, checked before the file appears; a kill or a bad archive leaves no half file."""
    try:
        data = gzip.decompress(archive.read_bytes())  # bounded: its MD5 was checked against torchvision's list
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{archive} is not a complete gzip archive ({e}); replace it or delete it to download again") from None
    dest = archive.with_suffix("")
    parse_idx(data, dest.name, f"{archive} (unpacked)")
    # 0o644: the dataset is not private, whatever the umask of the run that unpacked it.
    atomic_write(dest, lambda f: f.write(data), mode=0o644)
