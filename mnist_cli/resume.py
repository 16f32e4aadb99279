"""Exact resume: where a run stands and every RNG state, saved in last.pt so a killed run continues bit for bit."""

from __future__ import annotations

import itertools
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mnist_cli.checkpoint import config_from_checkpoint, load_checkpoint
from mnist_cli.config import Config, validate
from mnist_cli.errors import CheckpointError, ConfigError

RESUME_KEY = "resume"
# Keys that may differ between a run and its resumption: where it runs, not what it computes.
MAY_DIFFER = {("train", "device")}


@dataclass
class RunState:
    """Where a run stands; with the weights, optimizer and schedule it decides everything the run does next."""

    epoch: int = 1  # the epoch in progress, 1-based
    step: int = 0  # steps of `epoch` already taken
    epoch_generator_state: torch.Tensor | None = None  # the sampler's generator as `epoch` began
    rng: dict[str, Any] | None = None  # global RNG states at (epoch, step), to restore on entering the epoch
    loss_sum: torch.Tensor | None = None  # sum of loss x batch size over this epoch's steps, as the loop holds it
    seen: int = 0  # samples trained on in this epoch
    skipped: int = 0  # steps of this epoch dropped for a non-finite loss (train.on_nan: skip)
    epoch_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics row per finished epoch
    best_acc: float = -1.0
    best_epoch: int = 0
    train_time: float = 0.0
    samples: int = 0

    def next_epoch(self) -> None:
        """Move to the start of the following epoch."""
        self.epoch, self.step, self.epoch_generator_state, self.loss_sum = self.epoch + 1, 0, None, None
        self.seen, self.skipped, self.epoch_seconds = 0, 0, 0.0


def snapshot(run: RunState, generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """The resume payload for last.pt, in plain types and tensors (loadable with weights_only=True)."""
    at_boundary = run.step == 0
    return {
        "epoch": run.epoch,
        "step": run.step,
        # At an epoch boundary the generator already stands where the next epoch begins.
        "epoch_generator_state": generator.get_state() if at_boundary else run.epoch_generator_state.clone(),
        "rng": capture_rng(device),
        "loss_sum": None if run.loss_sum is None else run.loss_sum.detach().cpu().clone(),
        "seen": run.seen,
        "skipped": run.skipped,
        "epoch_seconds": run.epoch_seconds,
        "history": [dict(row) for row in run.history],
        "best_acc": run.best_acc,
        "best_epoch": run.best_epoch,
        "train_time": run.train_time,
        "samples": run.samples,
    }


def restore(ckpt: dict[str, Any], model, optimizer, scheduler, path: Path | str) -> RunState:
    """Load weights, optimizer and schedule from a last.pt and return where its run stood."""
    payload = ckpt.get(RESUME_KEY)
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} holds no resume state (only last.pt does; best.pt is for eval and predict)")
    try:
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        run = RunState(**payload)
        for name in ("epoch", "step", "seen", "skipped", "best_epoch", "samples"):
            if not isinstance(getattr(run, name), int) or getattr(run, name) < 0:
                raise ValueError(f"{name} is {getattr(run, name)!r}")
        if not isinstance(run.epoch_generator_state, torch.Tensor) or not isinstance(run.rng, dict):
            raise ValueError("RNG states are missing")
    except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: resume state does not fit this run ({reason})") from None
    return run


def enter_epoch(run: RunState, loader, generator: torch.Generator, device: torch.device) -> Iterator:
    """The batches of run.epoch still to do; on a resumed epoch, the sampler and every RNG stand as they did."""
    pending = run.rng
    if run.epoch_generator_state is not None:
        generator.set_state(run.epoch_generator_state)
    run.epoch_generator_state = generator.get_state()
    # iter(DataLoader) draws a seed from torch's global RNG: at a boundary the saved state precedes that draw,
    # mid-epoch it follows it, so the restore goes before or after creating the iterator.
    if pending is not None and run.step == 0:
        restore_rng(pending, device)
    batches = iter(loader)
    for _ in itertools.islice(batches, run.step):
        pass  # the batches done before the interruption: same permutation, skipped
    if pending is not None and run.step > 0:
        restore_rng(pending, device)
    run.rng = None
    return batches


def capture_rng(device: torch.device) -> dict[str, Any]:
    """torch (CPU and the CUDA devices), python and, when loaded, numpy RNG states."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    np = sys.modules.get("numpy")
    if np is not None:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state["numpy"] = [kind, torch.from_numpy(keys.astype("int64")), int(pos), int(has_gauss), float(gauss)]
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Put back the RNG states `capture_rng` took."""
    try:
        torch.set_rng_state(state["torch"])
        if device.type == "cuda" and "cuda" in state:
            torch.cuda.set_rng_state_all(state["cuda"])
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        if "numpy" in state:
            import numpy as np

            kind, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    except (RuntimeError, ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"resume state holds unusable RNG states ({e})") from None


def plan(
    resume: str, config_path: Path | None, overrides: list[str], out: Path | None, default_out: Path, device: str | None = None
) -> tuple[Config, Path, dict[str, Any] | None, Path | None]:
    """Resolve `--resume PATH|auto` into (config, output folder, checkpoint or None, its path or None).

    The stored config is the run's; a config given as well must match it, except for the device.
    """
    cfg, out_dir, ckpt, path = _plan(resume, config_path, overrides, out, default_out)
    if device is not None:
        cfg = validate({**cfg.model_dump(mode="json"), "train": {**cfg.train.model_dump(mode="json"), "device": device}})
    return cfg, out_dir, ckpt, path


def _plan(resume: str, config_path: Path | None, overrides: list[str], out: Path | None, default_out: Path):
    from mnist_cli.config import load_config

    given = config_path is not None or bool(overrides)
    if resume == "auto":
        cfg = load_config(config_path, overrides)
        out_dir = out or default_out
        path = out_dir / "last.pt"
        if not path.exists():
            return cfg, out_dir, None, None
    else:
        path = Path(resume)
        out_dir = out or path.parent
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt.get(RESUME_KEY), dict):
        raise CheckpointError(f"{path} holds no resume state (only last.pt does; best.pt is for eval and predict)")
    stored = config_from_checkpoint(ckpt, path)
    if not given:
        return stored, out_dir, ckpt, path
    cfg = load_config(config_path, overrides)
    differ = config_differences(stored, cfg)
    if differ:
        raise ConfigError(
            [f"{key}: {a!r} in the checkpoint, {b!r} now" for key, a, b in differ]
            + ["a resumed run keeps its config; drop --config/--set, or train into another --out"],
            f"--resume {path}",
        )
    return cfg, out_dir, ckpt, path


def config_differences(stored: Config, given: Config) -> list[tuple[str, Any, Any]]:
    """(key, stored, given) for every key that differs, except those in MAY_DIFFER."""
    a, b = stored.model_dump(mode="json"), given.model_dump(mode="json")
    out = []
    for section in sorted(set(a) | set(b)):
        x, y = a.get(section), b.get(section)
        if isinstance(x, dict) and isinstance(y, dict):
            out += [
                (f"{section}.{k}", x.get(k), y.get(k))
                for k in sorted(set(x) | set(y))
                if x.get(k) != y.get(k) and (section, k) not in MAY_DIFFER
            ]
        elif x != y:
            out.append((section, x, y))
    return out
