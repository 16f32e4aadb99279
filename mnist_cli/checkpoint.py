"""Self-describing checkpoints: weights plus everything needed to rebuild and use them, in plain types."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnist_cli import __version__
from mnist_cli.config import Config, validate
from mnist_cli.data.catalog import DATASETS, dataset_info
from mnist_cli.data.datasets import Normalization
from mnist_cli.disk import A_FOLDER, NO_SUCH_FILE, atomic_write, unreadable_file
from mnist_cli.errors import CheckpointError, ConfigError, first_line
from mnist_cli.model import legacy_key_map

FORMAT = "mnist-cli checkpoint"
# 2: the model's state-dict keys are named (hidden.0.linear.weight, output.bias); 1: an anonymous Sequential's (1.weight).
FORMAT_VERSION = 2
CHECKPOINT_DIR_ENV = "MNIST_CHECKPOINT_DIR"
DIGEST_KEY = "digest"  # SHA-256 of everything else: torch.load does not check the zip's CRCs, so bit rot loads silently
MAX_CLASSES = 1000
FORMAT_1_INPUT = ([1, 28, 28], 255.0)  # input_shape and input_scale of checkpoints written before they were stored
# Our checkpoints nest a few levels (optimizer_state -> state -> 0 -> exp_avg); a crafted list 200,000 deep would blow
# the stack.
MAX_DEPTH = 32


def checkpoints_root() -> Path:
    """$MNIST_CHECKPOINT_DIR if set, else ./checkpoints."""
    return Path(os.environ.get(CHECKPOINT_DIR_ENV) or "checkpoints")


def build_checkpoint(
    *,
    model: nn.Module,
    config: Config,
    normalization: Normalization,
    classes: list[str],
    metrics: dict[str, Any],
    epoch: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything `eval`, `predict` and a resumed run need, loadable with weights_only=True."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": {"mnist_cli": __version__, "torch": str(torch.__version__), "torchvision": _torchvision_version()},
        "config": config.model_dump(mode="json"),
        "input_shape": list(dataset_info(config.data.dataset).input_shape),
        "input_scale": normalization.scale,  # raw inputs are divided by this before normalisation
        "normalization": normalization.as_dict(),
        "classes": list(classes),
        "metrics": dict(metrics),
        "epoch": epoch,
        # Weights go to the CPU so a checkpoint trained on CUDA loads anywhere.
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        **(extra or {}),
    }


def _torchvision_version() -> str:
    """From its metadata: importing torchvision just for this costs ~1 s."""
    from importlib.metadata import PackageNotFoundError, version

    with contextlib.suppress(PackageNotFoundError):
        return version("torchvision")
    return "unknown"


def save_checkpoint(ckpt: dict[str, Any], path: Path) -> None:
    """Write atomically, with a digest of the contents: a temporary file in the same folder, fsync, rename over `path`."""
    body = {k: v for k, v in ckpt.items() if k != DIGEST_KEY}
    atomic_write(path, lambda f: torch.save({**body, DIGEST_KEY: content_digest(body)}, f))


def content_digest(value: Any) -> str:
    """SHA-256 over a canonical walk of plain values and tensor bytes (dtype and shape included)."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()


def _feed(h, value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise CheckpointError(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, torch.Tensor):
        if not holds_its_elements(value):
            # An expanded view (stride 0) of one stored number: a few bytes on disk, gigabytes once materialised.
            raise CheckpointError(f"a {value.dtype} tensor of shape {tuple(value.shape)} is a view, not stored data")
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=repr):
            h.update(f"{key!r}=".encode())
            _feed(h, value[key], depth + 1)
    elif isinstance(value, list | tuple):
        h.update(f"{type(value).__name__[0]}{len(value)}:".encode())
        for item in value:
            _feed(h, item, depth + 1)
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def holds_its_elements(t: torch.Tensor) -> bool:
    """True for a dense tensor whose storage holds every element: what torch.save writes for a real tensor."""
    if t.layout != torch.strided or not t.is_contiguous():
        return False
    return t.untyped_storage().nbytes() >= (t.storage_offset() + t.numel()) * t.element_size()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint; never unpickles code (weights_only=True)."""
    path = Path(path)
    problem = unreadable_file(path)
    if problem == A_FOLDER:
        raise CheckpointError(f"{path} is a folder; give a checkpoint file in it, such as {path / 'best.pt'}")
    if problem == NO_SUCH_FILE:
        raise CheckpointError(f"no such checkpoint: {path}")
    if problem:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({problem})")
    try:
        is_zip = zipfile.is_zipfile(path)
    except zipfile.BadZipFile as e:  # is_zipfile raises on some damaged end records ("span multiple disks")
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(e)})") from None
    if not is_zip:
        raise CheckpointError(f"{path}: not a checkpoint (not a file written by torch.save)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch words it "Unsupported global: GLOBAL x.y" or "unsupported GLOBAL x.y whose module x is blocked".
        found = re.search(r"(?i)unsupported (?:global: )?GLOBAL (\S+)", str(e))
        what = f"it references {found.group(1)}" if found else "it holds something other than plain data"
        raise CheckpointError(f"{path}: refused to load, {what}; checkpoints hold only tensors and plain values") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError, KeyError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an mnist-cli checkpoint")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is newer than this mnist-cli reads "
            f"({FORMAT_VERSION}); upgrade mnist-cli"
        )
    if missing := [k for k in ("config", "model_state", "normalization", "classes") if k not in ckpt]:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if DIGEST_KEY not in ckpt:
        # Every checkpoint mnist-cli has written carries one; a file without it was made or edited by hand.
        raise CheckpointError(f"{path}: not a checkpoint written by mnist-cli (it has no digest)")
    try:
        digest = content_digest({k: v for k, v in ckpt.items() if k != DIGEST_KEY})
    except CheckpointError as e:
        raise CheckpointError(f"{path}: not a usable checkpoint ({e})") from None
    if ckpt[DIGEST_KEY] != digest:
        raise CheckpointError(f"{path}: checkpoint is corrupt (its contents do not match the digest written with them)")
    if problem := _field_problem(ckpt):
        raise CheckpointError(f"{path}: not a usable checkpoint ({problem})")
    return _upgrade(ckpt, path) if version < FORMAT_VERSION else ckpt


def _upgrade(ckpt: dict[str, Any], path: Path) -> dict[str, Any]:
    """A format-1 checkpoint as format 2: the Sequential's keys renamed in order (the optimizer state stays valid)."""
    mapping = legacy_key_map(config_from_checkpoint(ckpt, path).model)
    state = ckpt["model_state"]
    if set(state) != set(mapping):
        raise CheckpointError(f"{path}: weights do not match the stored architecture (format 1 keys {sorted(state)[:3]})")
    return {**ckpt, "format_version": FORMAT_VERSION, "model_state": {mapping[k]: v for k, v in state.items()}}


def _field_problem(ckpt: dict[str, Any]) -> str | None:
    """What is wrong with the fields eval and predict rely on, or None."""
    classes, norm, state = ckpt["classes"], ckpt["normalization"], ckpt["model_state"]
    if not isinstance(classes, list) or not 1 <= len(classes) <= MAX_CLASSES or not all(isinstance(c, str) for c in classes):
        return f"classes must be a list of 1 to {MAX_CLASSES} names"
    if not isinstance(norm, dict) or not all(isinstance(norm.get(k), int | float) for k in ("mean", "std")):
        return "normalization must hold a numeric mean and std"
    if not (math.isfinite(norm["mean"]) and math.isfinite(norm["std"]) and norm["std"] > 0):
        return f"normalization {norm} is not finite with a positive std"
    if shape_problem := _input_problem(ckpt):
        return shape_problem
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return "model_state must map parameter names to tensors"
    if bad := [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]:
        return f"weights {', '.join(bad[:3])} hold NaN or inf"
    return None


def _input_problem(ckpt: dict[str, Any]) -> str | None:
    """input_shape and input_scale must be those of the dataset the stored config names."""
    default_shape, default_scale = FORMAT_1_INPUT
    shape, scale = ckpt.get("input_shape", default_shape), ckpt.get("input_scale", default_scale)
    config = ckpt["config"]
    data = config.get("data") if isinstance(config, dict) else None
    name = data.get("dataset", "mnist") if isinstance(data, dict) else "mnist"
    info = DATASETS.get(name) if isinstance(name, str) else None
    if info is None:
        return None  # the stored config's own check names the unknown dataset
    expected = list(info.input_shape)
    # Types first: `!=` against a list holding a tensor raises instead of answering.
    if not (isinstance(shape, list) and all(type(d) is int for d in shape) and shape == expected):
        return f"input_shape {ckpt.get('input_shape')!r} is not {expected}, the shape of {name}"
    if not (type(scale) in (int, float) and scale == info.scale):
        return f"input_scale {scale!r} is not {info.scale:g}, the scale of {name}"
    return None


def config_from_checkpoint(ckpt: dict[str, Any], path: Path | str = "checkpoint") -> Config:
    """The resolved config stored in a checkpoint."""
    try:
        return validate(ckpt["config"], f"{path} (stored config)")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
