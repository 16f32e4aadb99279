"""Checks made before any training starts: the memory and the disk a run will need."""

from __future__ import annotations

import contextlib
import shutil

import torch

from mnist_cli.config import Config
from mnist_cli.disk import nearest_existing
from mnist_cli.errors import MnistError
from mnist_cli.training.rundir import CHECKPOINT_FILES, RunDir

CHECKPOINT_OVERHEAD = 1 << 20  # bytes of config, metrics and pickle framing per checkpoint, generously
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sgd": 1}  # per-parameter state tensors


def check_resources(
    cfg: Config, run_dir: RunDir, device: torch.device, parameters: int, in_features: int, dataset_bytes: int
) -> None:
    """Refuse a run whose checkpoints cannot fit on the disk or whose training (with `dataset_bytes`, the whole
    dataset as uint8 on the device) cannot fit in memory."""
    out_dir = run_dir.path
    slots = OPTIMIZER_SLOTS.get(cfg.train.optimizer, 2)
    widest = max([*cfg.model.hidden_widths, in_features])
    activations = 4 * cfg.train.batch_size * widest * (len(cfg.model.hidden_widths) + 2) * 4
    evaluation = 4 * cfg.train.eval_batch_size * widest * 3
    need_memory = parameters * 4 * (2 + slots) + activations + evaluation + dataset_bytes
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
    """Bytes free for a new allocation on `device` (Linux's MemAvailable on the CPU), or None when it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/meminfo") as f:
        if device.type == "cpu":
            return 1024 * int(next(line for line in f if line.startswith("MemAvailable:")).split()[1])
    return None


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
