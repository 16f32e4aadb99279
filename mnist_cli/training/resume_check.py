"""A last.pt checked field by field before anything is restored: the digest proves a file is intact, not that it is ours.

A crafted optimizer state (an `exp_avg` smaller than its parameter) makes the fused Adam step write past its buffer:
a segfault, not an error. Every tensor is compared with the parameter it belongs to, every number by type and range.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mnist_cli.training.metrics import EpochMetrics

ADAM_SLOTS = {"step", "exp_avg", "exp_avg_sq"}
SGD_SLOTS = {"momentum_buffer"}
PYTHON_RNG_WORDS = 625  # random.getstate()'s internal state: 624 words of the Mersenne Twister and a position


def resume_problem(payload: dict[str, Any], ckpt: dict[str, Any], optimizer, scheduler, steps: int, epochs: int) -> str | None:
    """What makes a last.pt unsafe or unfit to continue this run with, or None."""
    return (
        optimizer_problem(ckpt.get("optimizer_state"), optimizer)
        or _kind_problem("scheduler_state", ckpt.get("scheduler_state"), scheduler.state_dict())
        or payload_problem(payload, steps, epochs)
    )


def optimizer_problem(saved: Any, optimizer: torch.optim.Optimizer) -> str | None:
    """The saved optimizer state against this run's optimizer: same groups and settings, one tensor per slot of the
    parameter's shape and dtype."""
    fresh = optimizer.state_dict()
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"}:
        return "optimizer_state must hold state and param_groups"
    groups = saved["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(fresh["param_groups"]):
        return "optimizer_state has other parameter groups than this model"
    for group, expected in zip(groups, fresh["param_groups"], strict=True):
        if not isinstance(group, dict) or set(group) != set(expected) or group["params"] != expected["params"]:
            return "optimizer_state has other parameter groups than this model"
        for key, value in expected.items():
            problem = _kind_problem(f"optimizer setting {key}", group[key], value)
            if problem:
                return problem
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = saved["state"]
    if not isinstance(state, dict) or not all(type(i) is int and 0 <= i < len(params) for i in state):
        return "optimizer_state.state must map parameter positions to their state"
    slots = SGD_SLOTS if isinstance(optimizer, torch.optim.SGD) else _adam_slots(optimizer)
    for i, entry in state.items():
        if not isinstance(entry, dict) or set(entry) != slots:
            return f"optimizer state of parameter {i} must hold {', '.join(sorted(slots))}"
        for name, value in entry.items():
            problem = _slot_problem(name, value, params[i])
            if problem:
                return f"optimizer state {i}.{name} {problem}"
    return None


def _adam_slots(optimizer: torch.optim.Optimizer) -> set[str]:
    return ADAM_SLOTS | ({"max_exp_avg_sq"} if optimizer.param_groups[0].get("amsgrad") else set())


def _slot_problem(name: str, value: Any, param: torch.Tensor) -> str | None:
    if name == "momentum_buffer" and value is None:
        return None
    if not isinstance(value, torch.Tensor) or value.layout != torch.strided:
        return "is not a tensor"
    if name == "step":
        if value.dim() != 0 or not value.is_floating_point() or not (math.isfinite(value.item()) and value.item() >= 0):
            return "must be a non-negative scalar"
        return None
    if tuple(value.shape) != tuple(param.shape) or value.dtype != param.dtype:
        return f"is {value.dtype} {tuple(value.shape)}, the parameter {param.dtype} {tuple(param.shape)}"
    if not bool(torch.isfinite(value).all()):
        return "holds NaN or inf"
    return None


def _kind_problem(name: str, saved: Any, fresh: Any) -> str | None:
    """None if `saved` has the structure and types of `fresh` (ints and floats interchangeable, finite)."""
    return None if _same_kind(saved, fresh) else f"{name} does not fit this run ({_short(saved)})"


def _same_kind(saved: Any, fresh: Any) -> bool:
    if fresh is None or isinstance(fresh, bool | str):
        return type(saved) is type(fresh)
    if isinstance(fresh, int | float):
        return type(saved) in (int, float) and math.isfinite(saved)
    if isinstance(fresh, list | tuple):
        return isinstance(saved, list | tuple) and len(saved) == len(fresh) and all(map(_same_kind, saved, fresh))
    if isinstance(fresh, dict):
        return isinstance(saved, dict) and set(saved) == set(fresh) and all(_same_kind(saved[k], fresh[k]) for k in fresh)
    return False


def payload_problem(p: dict[str, Any], steps: int, epochs: int) -> str | None:
    """The resume payload's counters, clocks, history and RNG states, by type and range."""
    counters = {
        "epoch": (1, epochs + 1),
        "step": (0, steps - 1),
        "seen": (0, None),
        "skipped": (0, steps),
        "best_epoch": (0, epochs),
        "samples": (0, None),
    }
    for name, (low, high) in counters.items():
        value = p.get(name)
        if type(value) is not int or value < low or (high is not None and value > high):
            return f"resume {name} is {_short(value)}, not a count in range"
    for name in ("epoch_seconds", "train_time"):
        if not _finite(p.get(name), 0.0):
            return f"resume {name} is {_short(p.get(name))}, not a finite number of seconds"
    if not _finite(p.get("best_acc"), -1.0, 1.0):
        return f"resume best_acc is {_short(p.get('best_acc'))}, not an accuracy"
    if "threads" in p and (type(p["threads"]) is not int or p["threads"] < 1):
        return f"resume threads is {_short(p['threads'])}, not a thread count"
    loss_sum = p.get("loss_sum")
    if loss_sum is not None and not (
        isinstance(loss_sum, torch.Tensor) and loss_sum.dim() == 0 and loss_sum.is_floating_point() and _finite(loss_sum.item())
    ):
        return "resume loss_sum is not a finite scalar tensor"
    return _history_problem(p.get("history"), p["epoch"]) or _rng_problem(p.get("epoch_generator_state"), p.get("rng"))


def _history_problem(history: Any, epoch: int) -> str | None:
    # One row per logged epoch: every epoch, or every train.log_every_epochs on long tiny runs.
    if not isinstance(history, list) or len(history) > epoch - 1:
        return f"resume history must list at most the {epoch - 1} finished epochs"
    previous = 0
    for i, row in enumerate(history, 1):
        try:
            metrics = EpochMetrics.from_dict(row) if isinstance(row, dict) else None
        except TypeError:
            metrics = None
        numbers = [metrics.train_loss, metrics.lr, metrics.seconds, metrics.samples_per_second] if metrics else []
        optional = [metrics.val_loss, metrics.val_accuracy] if metrics else []
        if (
            metrics is None
            or type(metrics.epoch) is not int
            or not previous < metrics.epoch <= epoch - 1
            or not all(_finite(x) for x in numbers)
            or not all(x is None or _finite(x) for x in optional)
        ):
            return f"resume history row {i} is not an epoch's metrics"
        previous = metrics.epoch
    return None


def _rng_problem(generator_state: Any, rng: Any) -> str | None:
    if not _bytes_like(generator_state, torch.Generator().get_state()):
        return "resume epoch_generator_state is not a generator's state"
    if not isinstance(rng, dict) or not _bytes_like(rng.get("torch"), torch.get_rng_state()):
        return "resume rng holds no torch RNG state"
    python = rng.get("python")
    if not (
        isinstance(python, list | tuple)
        and len(python) == 3
        and type(python[0]) is int
        and isinstance(python[1], list | tuple)
        and len(python[1]) == PYTHON_RNG_WORDS
        and all(type(w) is int and 0 <= w < 2**32 for w in python[1])
        and (python[2] is None or type(python[2]) is float)
    ):
        return "resume rng holds no Python RNG state"
    if "cuda" in rng and not (isinstance(rng["cuda"], list) and all(_bytes_like(s) for s in rng["cuda"])):
        return "resume rng holds unusable CUDA RNG states"
    numpy = rng.get("numpy")
    if numpy is not None and not (
        isinstance(numpy, list)
        and len(numpy) == 5
        and isinstance(numpy[0], str)
        and isinstance(numpy[1], torch.Tensor)
        and tuple(numpy[1].shape) == (624,)
        and numpy[1].dtype == torch.int64
        and all(type(x) in t for x, t in zip(numpy[2:], ((int,), (int,), (int, float)), strict=True))
    ):
        return "resume rng holds an unusable numpy RNG state"
    return None


def _bytes_like(value: Any, like: torch.Tensor | None = None) -> bool:
    """A uint8 vector (of `like`'s length): how torch stores a generator's state."""
    return (
        isinstance(value, torch.Tensor)
        and value.dtype == torch.uint8
        and value.dim() == 1
        and (like is None or value.shape == like.shape)
    )


def _finite(value: Any, low: float | None = None, high: float | None = None) -> bool:
    return (
        type(value) in (int, float) and math.isfinite(value) and (low is None or value >= low) and (high is None or value <= high)
    )


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, torch.Tensor) else f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return text if len(text) <= 40 else text[:37] + "..."
