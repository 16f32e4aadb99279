"""Files on disk: writes that a crash cannot leave half done, and probes of where a file can go."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from mnist_cli.errors import MnistError

TEMP_SUFFIX = ".tmp"


def temp_name_prefix(path: Path) -> str:
    """Temporary files for `path` are named `.<name>.<random>.tmp` beside it; only these are ever cleaned up."""
    return f".{path.name}."


def atomic_write(
    path: Path, write: Callable[[IO[bytes]], object], mode: int | None = None, check: Callable[[Path], object] | None = None
) -> None:
    """Call write(file) on a temp file beside `path`, fsync, then replace `path`; a crash leaves the old file.

    `mode` is the file's permission bits (default: what the umask allows a new file, as `open` would give);
    `check(temp_path)` may raise to refuse the written file before it replaces anything.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_name_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(Path(tmp))
        os.chmod(tmp, mode if mode is not None else 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            kept = f"the previous {path.name} is intact" if path.exists() else "nothing was written"
            raise MnistError(f"cannot write {path} ({e.strerror or e}); {kept}") from None
        raise


def umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def nearest_existing(path: Path) -> Path:
    """`path` itself if it exists, else its closest existing parent."""
    return next(p for p in (path, *Path(path).parents) if p.exists())


def accepts_new_file(folder: Path) -> bool:
    """True if `folder`, or its nearest existing parent, takes a new file; tried, since root ignores modes."""
    try:
        probe_writable(folder)
    except OSError:
        return False
    return True


def probe_writable(folder: Path) -> Path:
    """Write and remove a temporary file in `folder` or its nearest existing parent; raise OSError if that fails."""
    import errno

    base = nearest_existing(Path(folder))
    if not base.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{base} is a file")
    with tempfile.TemporaryFile(dir=base):
        pass
    return base
