"""Where a run stands (RunState) and every RNG state: saved in last.pt so a killed run continues bit for bit."""

from __future__ import annotations

import contextlib
import itertools
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mnist_cli.errors import CheckpointError, first_line
from mnist_cli.training.metrics import EpochMetrics

RESUME_KEY = "resume"
NO_RESUME_STATE = "holds no resume state (only last.pt does; best.pt is for eval and predict)"


@dataclass
class RunState:
    """Where a run stands; with the weights, optimizer and schedule it decides everything the run does next."""

    epoch: int = 1  # the epoch in progress, 1-based
    step: int = 0  # steps of `epoch` already taken
    epoch_generator_state: torch.Tensor | None = None  # the sampler's generator as `epoch` began
    rng: dict[str, Any] | None = None  # global RNG states at (epoch, step), to restore on entering the epoch
    loss_sum: torch.Tensor | None = None  # sum of loss x batch size over this epoch's steps, as the loop holds it
    correct: torch.Tensor | None = None  # training images of this epoch classified right (int64), as the loop holds it
    seen: int = 0  # samples trained on in this epoch
    skipped: int = 0  # steps of this epoch dropped for a non-finite loss (train.on_nan: skip)
    epoch_seconds: float = 0.0
    history: list[EpochMetrics] = field(default_factory=list)  # one row per finished epoch
    best_acc: float = -1.0
    best_epoch: int = 0
    train_time: float = 0.0
    samples: int = 0

    def next_epoch(self) -> None:
        """Move to the start of the following epoch."""
        self.epoch, self.step, self.epoch_generator_state, self.loss_sum = self.epoch + 1, 0, None, None
        self.correct = None
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
        "correct": None if run.correct is None else run.correct.detach().cpu().clone(),
        "seen": run.seen,
        "skipped": run.skipped,
        "epoch_seconds": run.epoch_seconds,
        "history": [row.as_dict() for row in run.history],
        "best_acc": run.best_acc,
        "best_epoch": run.best_epoch,
        "train_time": run.train_time,
        "samples": run.samples,
    }


def restore(ckpt: dict[str, Any], model, optimizer, scheduler, path: Path | str) -> RunState:
    """Load weights, optimizer and schedule from a last.pt and return where its run stood."""
    payload = resume_payload(ckpt, path)
    try:
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        run = RunState(**payload)
        run.history = [EpochMetrics.from_dict(row) for row in run.history]
        for name in ("epoch", "step", "seen", "skipped", "best_epoch", "samples"):
            if not isinstance(getattr(run, name), int) or getattr(run, name) < 0:
                raise ValueError(f"{name} is {getattr(run, name)!r}")
        if not isinstance(run.epoch_generator_state, torch.Tensor) or not isinstance(run.rng, dict):
            raise ValueError("RNG states are missing")
    except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{path}: resume state does not fit this run ({first_line(e)})") from None
    return run


def resume_payload(ckpt: dict[str, Any], path: Path | str) -> dict[str, Any]:
    """The resume state a last.pt holds; any other checkpoint is refused."""
    payload = ckpt.get(RESUME_KEY)
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} {NO_RESUME_STATE}")
    return payload


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


@contextlib.contextmanager
def isolated_process_state(device: torch.device, threads: int | None) -> Iterator[None]:
    """Set torch's CPU threads for a run, and put them and every RNG state back when it ends."""
    saved_rng, saved_threads = capture_rng(device), torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != saved_threads:
            torch.set_num_threads(saved_threads)
        restore_rng(saved_rng, device)
