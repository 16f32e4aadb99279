"""Checks made before any training starts: the output folder, the disk and the memory a run will need."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO

import torch

from mnist_cli.config import Config
from mnist_cli.errors import MnistError

CHECKPOINT_FILES = ("best.pt", "last.pt")
CHECKPOINT_OVERHEAD = 1 << 20  # bytes of config, metrics and pickle framing per checkpoint, generously
DATASET_BYTES = 70_000 * 28 * 28  # the whole dataset as uint8, on the training device
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sgd": 1}  # per-parameter state tensors


def prepare_out_dir(out_dir: Path, create: bool = True) -> Path:
    """Create the output folder and prove a file can be written there (root ignores permission bits).

    With `create` false (a dry run) nothing is made: the nearest existing folder on the way must take a file.
    """
    try:
        if create:
            out_dir.mkdir(parents=True, exist_ok=True)
        base = nearest_existing(out_dir)
        if not base.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{base} is a file")
        with tempfile.TemporaryFile(dir=base):
            pass
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise MnistError(f"output directory {out_dir} cannot be created or written to ({reason})") from None
    return out_dir


def nearest_existing(path: Path) -> Path:
    """`path` itself if it exists, else its closest existing parent."""
    return next(p for p in (path, *path.parents) if p.exists())


def refuse_to_replace(out_dir: Path) -> None:
    """A new run must not silently replace another run's checkpoints."""
    if (out_dir / "last.pt").exists():
        raise MnistError(
            f"{out_dir} already holds a run (last.pt); continue it with --resume auto, "
            "replace it with --overwrite, or choose another --out"
        )


def lock_out_dir(out_dir: Path) -> IO[bytes] | None:
    """Hold out_dir/.lock so two runs cannot write the same checkpoints; the lock lasts while the file stays open."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock, as before
        return None
    handle = open(out_dir / ".lock", "a+b")  # noqa: SIM115 - kept open for the whole run on purpose
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise MnistError(f"another `mnist train` is writing to {out_dir}; wait for it or use another --out") from None
    # Under the lock no save is in flight, so temporary files are leftovers of a killed run.
    for stale in out_dir.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    return handle


def parameter_count(cfg: Config, in_features: int, num_classes: int) -> int:
    """Parameters of the configured model, counted on the meta device: no memory, no RNG draws."""
    from mnist_cli.model import build_model, count_parameters

    with torch.device("meta"):
        return count_parameters(build_model(cfg.model, in_features, num_classes))


def check_resources(cfg: Config, out_dir: Path, device: torch.device, parameters: int) -> None:
    """Refuse a run whose checkpoints cannot fit on the disk or whose training cannot fit in memory."""
    slots = OPTIMIZER_SLOTS.get(cfg.train.optimizer, 2)
    widest = max([*cfg.model.hidden_widths, 784])
    activations = 4 * cfg.train.batch_size * widest * (len(cfg.model.hidden_widths) + 2) * 4
    evaluation = 4 * cfg.train.eval_batch_size * widest * 3
    need_memory = parameters * 4 * (2 + slots) + activations + evaluation + DATASET_BYTES
    free_memory = available_memory(device)
    if free_memory is not None and need_memory > free_memory:
        raise MnistError(
            f"the model ({parameters:,} parameters) needs about {_size(need_memory)} of memory on {device} to train, "
            f"{_size(free_memory)} is available; lower model.width, model.depth or train.batch_size"
        )

    checkpoint = parameters * 4 * (1 + slots) + CHECKPOINT_OVERHEAD
    # best.pt, last.pt and the temporary copy written before it replaces either; existing files are reused.
    existing = sum((out_dir / name).stat().st_size for name in CHECKPOINT_FILES if (out_dir / name).is_file())
    need_disk = max(checkpoint, 3 * checkpoint - existing)
    free_disk = shutil.disk_usage(nearest_existing(out_dir)).free
    if need_disk > free_disk:
        raise MnistError(
            f"not enough free space in {out_dir}: the checkpoints need about {_size(need_disk)}, {_size(free_disk)} is free"
        )


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new allocation on `device`, or None when it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return _sysconf_memory()


def _sysconf_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
