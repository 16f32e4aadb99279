"""Where a run stands, saved in last.pt. Everything else a resumed run needs is derived: the batch order of an epoch
from (seed, epoch), the random draws of a step from (seed, global step), the best epoch from the event log."""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mnist_cli.errors import CheckpointError, first_line

RESUME_KEY = "resume"


def derived_seed(seed: int, purpose: str, n: int) -> int:
    """A 64-bit seed for ('epoch', n) or ('step', n) of the run seeded `seed`: distinct streams, no shared state."""
    return int.from_bytes(hashlib.blake2b(f"{seed}/{purpose}/{n}".encode(), digest_size=8).digest(), "little")


def step_generator(device: torch.device) -> torch.Generator | None:
    """The generator a step's dropout and augmentation draw from on `device`, to seed per step: torch.manual_seed
    would also queue a CUDA seeding with a stack trace, ~100 us a step on a CPU-only machine against ~1 us."""
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()]
    return torch.default_generator if device.type == "cpu" else None  # None: torch.manual_seed (mps)


@dataclass
class RunState:
    """The position and the running sums: with the weights, optimizer and schedule, what the run does next."""

    epoch: int = 1  # the epoch in progress, 1-based
    step: int = 0  # steps of `epoch` already taken
    loss_sum: torch.Tensor | None = None  # sum of loss x batch size over this epoch's steps, on the device
    correct: torch.Tensor | None = None  # training images of this epoch classified right (int64), on the device
    seen: int = 0  # samples trained on in this epoch
    skipped: int = 0  # steps of this epoch dropped for a non-finite loss (train.on_nan: skip)
    seconds: float = 0.0  # training time since the last epoch record, this epoch's steps so far included
    samples: int = 0  # samples of the finished epochs since the last epoch record

    def next_epoch(self) -> None:
        """Move to the start of the following epoch."""
        self.epoch, self.step, self.loss_sum, self.correct, self.seen, self.skipped = self.epoch + 1, 0, None, None, 0, 0

    def snapshot(self) -> dict[str, Any]:
        """The resume payload for last.pt, plain values and CPU tensors (loadable with weights_only=True)."""
        cpu = lambda t: None if t is None else t.detach().cpu().clone()  # noqa: E731
        return {**asdict(self), "loss_sum": cpu(self.loss_sum), "correct": cpu(self.correct)}


def restore(ckpt: dict[str, Any], model, optimizer, scheduler, path: Path | str, steps: int, epochs: int) -> RunState:
    """Load a last.pt's weights, optimizer and schedule and return where its run stood, refusing what would crash:
    optimizer state that does not fit the parameters makes the fused Adam step write past its buffers."""
    payload = resume_payload(ckpt, path)
    problem = optimizer_problem(ckpt.get("optimizer_state"), optimizer) or payload_problem(payload, steps, epochs)
    if problem is None and not same_kind(ckpt.get("scheduler_state"), scheduler.state_dict()):
        problem = "scheduler_state does not fit this run"
    if problem is None:
        try:
            model.load_state_dict(ckpt["model_state"])
            optimizer.load_state_dict(ckpt["optimizer_state"])
            scheduler.load_state_dict(ckpt["scheduler_state"])
        except (RuntimeError, ValueError, TypeError, KeyError) as e:
            problem = first_line(e)
    if problem:
        raise CheckpointError(f"{path}: resume state does not fit this run ({problem})")
    return RunState(**{k: payload[k] for k in RunState.__dataclass_fields__})


def resume_payload(ckpt: dict[str, Any], path: Path | str) -> dict[str, Any]:
    """The resume state a last.pt holds; any other checkpoint is refused."""
    payload = ckpt.get(RESUME_KEY)
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} holds no resume state (only last.pt does; best.pt is for eval and predict)")
    if "rng" in payload:  # the release before captured RNG states; this one derives them, so the run would differ
        folder = Path(path).parent
        raise CheckpointError(
            f"{path} was saved by an earlier mnist-cli, whose runs this one cannot continue exactly; start the run "
            f"again with: mnist train -c {folder / 'config.yaml'} --out {folder} --overwrite"
        )
    return payload


def payload_problem(p: dict[str, Any], steps: int, epochs: int) -> str | None:
    """The position and running sums against what a run saves, and the position inside this run."""
    fresh = RunState(loss_sum=torch.zeros(()), correct=torch.zeros((), dtype=torch.int64)).snapshot()
    for name, like in fresh.items():
        if not same_kind(p.get(name), like) and not (isinstance(like, torch.Tensor) and p.get(name) is None):
            return f"resume {name} is {p.get(name)!r:.40}, not what a run saves"
    if not (1 <= p["epoch"] <= epochs + 1 and 0 <= p["step"] < steps):
        return f"resume step {p['step']} of epoch {p['epoch']} is not a position in this run"
    return None


def optimizer_problem(saved: Any, optimizer: torch.optim.Optimizer) -> str | None:
    """The saved optimizer state against this run's optimizer: its settings, and per parameter tensors of its shape
    and dtype (the fused Adam step would write past smaller ones)."""
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"}:
        return "optimizer_state must hold state and param_groups"
    groups, fresh = saved["param_groups"], optimizer.state_dict()["param_groups"]
    if not isinstance(groups, list) or [g.get("params") if isinstance(g, dict) else g for g in groups] != [
        g["params"] for g in fresh
    ]:
        return "optimizer_state has other parameter groups than this model"
    for group, expected in zip(groups, fresh, strict=True):
        bad = next((key for key, value in expected.items() if not same_kind(group.get(key), value)), None)
        if bad:
            return f"optimizer setting {bad} does not fit this run ({group.get(bad)!r:.40})"
    params = [p.detach() for group in optimizer.param_groups for p in group["params"]]
    state = saved["state"]
    if not isinstance(state, dict) or not all(type(i) is int and 0 <= i < len(params) for i in state):
        return "optimizer_state.state must map parameter positions to their state"
    for i, entry in state.items():
        for name, value in entry.items() if isinstance(entry, dict) else [("state", entry)]:
            like = torch.zeros(()) if name == "step" else params[i]  # Adam's step: a float32 scalar
            if not same_kind(value, like) and not (name == "momentum_buffer" and value is None):
                return f"optimizer state {i}.{name} is {_described(value)}, the parameter {_described(params[i])}"
    return None


def same_kind(saved: Any, fresh: Any) -> bool:
    """`saved` has the structure and types of `fresh`: an int may stand for a float, numbers are finite, tensors are
    dense and of the same shape and dtype."""
    if isinstance(fresh, torch.Tensor):
        return _described(saved) == _described(fresh)
    if isinstance(fresh, float):
        return type(saved) in (int, float) and math.isfinite(saved)
    if isinstance(fresh, list | tuple):
        return isinstance(saved, list | tuple) and len(saved) == len(fresh) and all(map(same_kind, saved, fresh))
    if isinstance(fresh, dict):
        return isinstance(saved, dict) and set(saved) == set(fresh) and all(same_kind(saved[k], fresh[k]) for k in fresh)
    return type(saved) is type(fresh)  # None, bool, int, str


def _described(value: Any) -> str:
    """`torch.float32 (3,)` for a dense tensor, NaN or inf named."""
    if not isinstance(value, torch.Tensor) or value.layout != torch.strided:
        return "not a tensor"
    return f"{value.dtype} {tuple(value.shape)}" + ("" if bool(torch.isfinite(value).all()) else " holding NaN or inf")


@contextlib.contextmanager
def isolated_process_state(device: torch.device, threads: int) -> Iterator[None]:
    """Run with `threads` CPU threads and subnormal floats flushed to zero; put the thread count, torch's default
    (no flushing) and its RNG states (which a run reseeds) back after, so that of the hundreds of runs a sweep trains
    in one worker none changes what the next one does.

    Flushing: Adam's moments of weights whose gradient is always zero (the blank border pixels of unnormalised
    MNIST, a dead ReLU unit's row) decay below 1e-38 within a thousand steps, where arithmetic on them costs
    ~15x; configs/classic-64x3.yaml's optimizer step took 3x as long. It applies to this thread, which does all the
    work of a one-thread (small-step) run and its share of a larger one."""
    saved_threads, saved_rng = torch.get_num_threads(), torch.get_rng_state()
    saved_cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_num_threads(saved_threads)
        torch.set_flush_denormal(False)
        torch.set_rng_state(saved_rng)
        if saved_cuda is not None:
            torch.cuda.set_rng_state_all(saved_cuda)
