"""Files on disk: writes that a crash cannot leave half done, and probes of where a file can go."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from mnist_cli.errors import MnistError

TEMP_SUFFIX = ".tmp"
TEMP_RANDOM = r"[a-z0-9_]{8}"  # the random part tempfile.mkstemp puts in a name
NO_SUCH_FILE = "no such file"
A_FOLDER = "a folder, not a file"
# What an OSError means to a user, in their words rather than the C library's.
REASONS = {
    errno.EACCES: "permission denied",
    errno.ENAMETOOLONG: "a name in the path is longer than the file system allows (255 bytes)",
    errno.ELOOP: "a symlink loop",
    errno.ENOENT: NO_SUCH_FILE,
    errno.EISDIR: "it is a folder",
    errno.ENOTDIR: f"{NO_SUCH_FILE} (a part of the path is not a folder)",
}
KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def os_reason(e: OSError) -> str:
    """An OSError in a few words: 'permission denied', 'a symlink loop', ..."""
    return REASONS.get(e.errno or 0) or str(e.strerror or e)


def unreadable_file(path: Path) -> str | None:
    """Why `path` cannot be read as a regular file, in words, or None: opened, since root ignores mode bits; a FIFO or
    a device is named, never opened (reading a pipe or /dev/zero would not end)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return os_reason(e)
    except ValueError:  # a NUL byte in the path
        return NO_SUCH_FILE
    if stat.S_ISDIR(mode):
        return A_FOLDER
    if not stat.S_ISREG(mode):
        return f"{KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, not a regular file"
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        return os_reason(e)
    return None


def atomic_write(path: Path, write: Callable[[IO[bytes]], object], mode: int | None = None) -> None:
    """Call write(file) on a temp file beside `path`, fsync, then replace `path`; a crash leaves the old file. `mode`:
    permission bits (default: what the umask allows, as `open` gives)."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Named `.<name>.<random>.tmp` beside it: only these are ever cleaned up.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is None:
            os.umask(mask := os.umask(0))  # the umask is read by setting it and putting it back
            mode = 0o666 & ~mask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            # A folder made read-only or immutable meanwhile keeps the temporary file: named as ours, the next run
            # removes it. The error to report is the one that stopped the write.
            with contextlib.suppress(OSError):
                Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            kept = f"the previous {path.name} is intact" if os.path.exists(path) else f"{path.name} was not written"
            raise MnistError(f"cannot write {path} ({os_reason(e)}); {kept}") from None
        raise


def nearest_existing(path: Path) -> Path:
    """`path` itself if it exists, else its closest existing parent."""
    return next(p for p in (path, *Path(path).parents) if p.exists())


def probe_writable(folder: Path) -> Path:
    """Write and remove a temporary file in `folder` or its nearest existing parent (root ignores mode bits); OSError."""
    base = nearest_existing(Path(folder))
    if not base.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{base} is a file")
    with tempfile.TemporaryFile(dir=base):
        pass
    return base
