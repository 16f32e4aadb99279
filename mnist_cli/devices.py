"""Turning a device name from the config into a torch.device that exists here."""

from __future__ import annotations

import torch

from mnist_cli.config import DEVICE_NAMES_HELP, is_device_name
from mnist_cli.errors import DeviceError

# Multiply-adds of a step (batch x parameters) below which a second CPU thread costs more to wake than it saves:
# 15 x 59k (784-64x3, the tutorials' batch) runs faster on one thread; 64 x 203k (784-256-10) gains from two.
ONE_THREAD_WORK = 4_000_000


def resolve_device(name: str) -> torch.device:
    """auto -> cuda, then mps, then cpu; an explicit device that is absent is an error, never a fallback."""
    if not is_device_name(name):
        raise DeviceError(f"device {name!r}: {DEVICE_NAMES_HELP}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} asked for, but CUDA is not available on this machine (use --device cpu)")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    if name == "mps" and not _mps_available():
        raise DeviceError("device 'mps' asked for, but MPS is not available on this machine (use --device cpu)")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def default_threads(batch_size: int, parameters: int) -> int:
    """The CPU threads for a run that sets no train.threads: one for small steps, else torch's default (one per core)."""
    return 1 if batch_size * parameters < ONE_THREAD_WORK else torch.get_num_threads()
