"""Crafted checkpoints: a stranger's file is refused with one line; it never crashes, corrupts memory or exhausts it.

The digest proves a file is intact, not that it is ours: every crafted file here is re-signed (`sign`), so only the
checks after the digest can catch it.
"""

from __future__ import annotations

import functools
import operator
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import MNIST, assert_refused, invoke, sign, write_config

from mnist_cli.config import load_config
from mnist_cli.errors import TrainingInterrupted
from mnist_cli.record import EpochMetrics
from mnist_cli.training.loop import train


@pytest.fixture(scope="module")
def unfinished_run(tmp_path_factory, synthetic_root) -> Path:
    """A run stopped after its first of two epochs: last.pt (with Adam state and a resume payload) and best.pt."""
    out = tmp_path_factory.mktemp("unfinished")
    cfg = load_config(write_config(out / "run.yaml", data={"val_size": 100, "root": str(synthetic_root)}))
    finished: list[EpochMetrics] = []
    with pytest.raises(TrainingInterrupted):
        # Stop at the end of epoch 1, as Ctrl-C would: best.pt exists and the payload has one epoch of history.
        train(
            cfg,
            out / "run",
            lambda e: finished.append(e) if isinstance(e, EpochMetrics) else None,
            should_stop=lambda: bool(finished),
        )
    return out / "run"


def crafted_copy(run: Path, tmp_path: Path, keys: list, value) -> Path:
    """A copy of the run folder whose last.pt holds `value` at ckpt[keys[0]][keys[1]]..., re-signed."""
    copy = tmp_path / "evil"
    shutil.copytree(run, copy)
    ckpt = torch.load(copy / "last.pt", weights_only=True)
    functools.reduce(operator.getitem, keys[:-1], ckpt)[keys[-1]] = value
    torch.save(sign(ckpt), copy / "last.pt")
    return copy


def test_an_optimizer_state_smaller_than_its_parameter_is_refused_not_a_segfault(unfinished_run, tmp_path):
    # The fused Adam step wrote past a 3-element exp_avg: exit 139 (segfault) or 134 (munmap_chunk) before the fix.
    evil = crafted_copy(unfinished_run, tmp_path, ["optimizer_state", "state", 0, "exp_avg"], torch.zeros(3))
    r = subprocess.run([*MNIST, "train", "--resume", evil / "last.pt", "-q"], capture_output=True, text=True, timeout=120)
    assert_refused(r, "resume state does not fit this run", "optimizer state 0.exp_avg is torch.float32 (3,)")
    assert torch.load(evil / "last.pt", weights_only=True)["optimizer_state"]["state"][0]["exp_avg"].shape == (3,)


@pytest.mark.parametrize(
    ("keys", "value", "fragment"),
    [
        (["optimizer_state", "state", 0, "exp_avg_sq"], torch.zeros(32, 784, dtype=torch.float64), "exp_avg_sq"),
        (["optimizer_state", "state", 0, "step"], "x", "0.step is not a tensor"),
        (["optimizer_state", "state", 0, "exp_avg"], torch.full((32, 784), float("nan")), "NaN or inf"),
        (["optimizer_state", "state", 99], {}, "parameter positions"),
        (["optimizer_state", "param_groups", 0, "lr"], "x", "optimizer setting lr"),
        (["optimizer_state", "param_groups", 0, "betas"], [0.9], "optimizer setting betas"),
        (["optimizer_state"], None, "optimizer_state must hold"),
        (["scheduler_state"], {"last_epoch": "x"}, "scheduler_state does not fit"),
        (["resume", "loss_sum"], "x", "loss_sum"),
        (["resume", "correct"], torch.zeros(3), "correct"),
        (["resume", "seconds"], "x", "seconds"),
        (["resume", "seconds"], float("nan"), "seconds"),
        (["resume", "epoch"], True, "resume epoch"),
        (["resume", "step"], 10**9, "resume step"),
    ],
)
def test_what_would_crash_a_resume_is_checked_before_anything_is_restored(unfinished_run, tmp_path, keys, value, fragment):
    evil = crafted_copy(unfinished_run, tmp_path, keys, value)
    before = (evil / "last.pt").read_bytes()
    r = invoke("train", "--resume", evil / "last.pt", "-q")
    assert_refused(r, "resume state does not fit this run", fragment)
    assert (evil / "last.pt").read_bytes() == before


def bomb(tmp_path: Path, trained_checkpoint: Path, signed: bool) -> Path:
    """A few KB that describe a 65536-wide, 3-deep model (17 GB of float32) as expanded views of one number."""
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    ckpt["config"]["model"].update(width=65536, depth=3)
    widths = [784, 65536, 65536, 65536]
    state = {}
    for i in range(3):
        state[f"hidden.{i}.linear.weight"] = torch.zeros(1).expand(widths[i + 1], widths[i])
        state[f"hidden.{i}.linear.bias"] = torch.zeros(1).expand(widths[i + 1])
    state["output.weight"], state["output.bias"] = torch.zeros(1).expand(10, 65536), torch.zeros(1).expand(10)
    ckpt.update(model_state=state, optimizer_state=None, scheduler_state=None)
    path = tmp_path / ("signed-bomb.pt" if signed else "bomb.pt")
    if signed:
        # Signing hashes the bytes a view stands for: 17 GB. Sign a stand-in of the same keys, then swap the views in.
        ckpt["digest"] = "0" * 64
    else:
        ckpt.pop("digest")
    torch.save(ckpt, path)
    assert path.stat().st_size < 64 * 1024
    return path


def _memory_cap() -> None:
    limit = 8 * 2**30  # 8 GB of address space (torch and OpenBLAS reserve some): far below the 17 GB the file describes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize("signed", [False, True])
def test_a_small_file_describing_a_huge_model_allocates_nothing(trained_checkpoint, tmp_path, signed):
    path = bomb(tmp_path, trained_checkpoint, signed)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # fewer thread arenas under the cap
    r = subprocess.run(
        [*MNIST, "eval", path], capture_output=True, text=True, timeout=120, preexec_fn=_memory_cap, cwd=tmp_path, env=env
    )
    assert_refused(r, str(path), "is a view, not stored data" if signed else "it has no digest")


def test_a_deeply_nested_value_is_refused_not_a_recursion_error(trained_checkpoint, tmp_path):
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    deep: list = []
    for _ in range(5000):  # the default recursion limit is 1000
        deep = [deep]
    ckpt["metrics"]["deep"] = deep
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(50_000)  # only to write the file: pickling recurses too
    try:
        torch.save(ckpt, tmp_path / "deep.pt")
    finally:
        sys.setrecursionlimit(limit)
    assert_refused(invoke("eval", tmp_path / "deep.pt"), "nested more than 32 levels deep")


# --- resume and best.pt -----------------------------------------------------------------------------------------


def _other_runs(run: Path, trained_checkpoint: Path) -> None:
    other = torch.load(trained_checkpoint, weights_only=True)
    other["config"]["train"]["lr"] = 0.5  # another run's best model: same architecture, other settings
    torch.save(sign(other), run / "best.pt")


def _one_flipped_weight_byte(run: Path, _) -> None:
    # torch.load does not notice, the digest does.
    data = bytearray((run / "best.pt").read_bytes())
    raw = torch.load(run / "best.pt", weights_only=True)["model_state"]["hidden.0.linear.weight"].numpy().tobytes()
    at = bytes(data).find(raw[:64])
    assert at > 0
    data[at + 3] ^= 0x40
    (run / "best.pt").write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("spoil", "fragments"),
    [
        (lambda run, _: (run / "best.pt").unlink(), ["cannot resume", "no such checkpoint", "best.pt"]),
        (lambda run, _: (run / "events.jsonl").unlink(), ["cannot resume", "events.jsonl is missing"]),
        (_other_runs, ["is not this run's best model"]),
        (_one_flipped_weight_byte, ["cannot resume", "checkpoint is corrupt"]),
        (lambda run, _: (run / "best.pt").write_bytes(b"junk"), ["cannot resume", "not a checkpoint"]),
    ],
)
def test_a_resume_without_its_best_pt_or_record_or_with_a_foreign_or_damaged_one_is_refused(
    unfinished_run, trained_checkpoint, tmp_path, spoil, fragments
):
    copy = Path(shutil.copytree(unfinished_run, tmp_path / "copy"))
    spoil(copy, trained_checkpoint)
    files = lambda: {p.name: p.read_bytes() for p in copy.iterdir()}  # noqa: E731
    before = files()
    assert_refused(invoke("train", "--resume", copy / "last.pt", "-q"), *fragments)
    assert files() == before  # refused before training: nothing written
