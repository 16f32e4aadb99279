"""One run of a sweep: the function every backend calls, in a worker that trains many runs one after another."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import filelock

from mnist_cli.errors import MnistError, TrainingInterrupted, first_line
from mnist_cli.tracking import MlflowTarget

STOP = ".stop"  # in the sweep folder: asks every task, on any machine, to stop after its current step
STOP_POLL_S = 0.25  # a task looks for the stop file at most this often (cheap even on network storage)
LOCK_POLL_S = 1.0
FROM_RESULT = ("val_accuracy", "test_accuracy", "test_loss", "best_epoch", "train_seconds", "parameters", "node")


@dataclass(frozen=True)
class RunSpec:
    """One cell's values, one seed, the run folder and the run's validated config (plain types, picklable)."""

    params: dict[str, Any]
    seed: int
    out_dir: str
    config: dict[str, Any]
    mlflow: MlflowTarget | None = None  # the sweep's parent run, which this run nests under


@dataclass(frozen=True)
class RunRow:
    """What became of one run: a row of runs.csv. status: done, failed, interrupted or pending (never started)."""

    params: dict[str, Any]
    seed: int
    out_dir: str
    status: str
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    best_epoch: int | None = None
    train_seconds: float | None = None
    parameters: int | None = None
    node: str | None = None  # where it trained: the host name, and the Ray node on a cluster
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The `--json` row."""
        return {k: v for k, v in asdict(self).items() if k not in ("test_loss", "best_epoch")}


def pending(spec: RunSpec, status: str = "pending", error: str | None = None) -> RunRow:
    """A row without results: pending (never started), interrupted or failed."""
    return RunRow(spec.params, spec.seed, spec.out_dir, status, error=error)


class StopFile:
    """The sweep's stop request as a file in the sweep folder, so that tasks on other machines see it too."""

    def __init__(self, sweep_dir: Path | str):
        self.path = Path(sweep_dir) / STOP
        self._checked, self._stop = -STOP_POLL_S, False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._checked >= STOP_POLL_S:
            self._checked, self._stop = now, self.path.exists()
        return self._stop


@contextlib.contextmanager
def worker_state(threads: int) -> Iterator[None]:
    """A process that trains many runs: `threads` CPU threads, each dataset parsed once, for the block."""
    import torch

    from mnist_cli.data.datasets import datasets_kept_loaded

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with datasets_kept_loaded():
            yield
    finally:
        torch.set_num_threads(saved)


def read_row(spec: RunSpec) -> RunRow | None:
    """A finished run's row (from its result.json), a failed row when the folder holds another config's run, else None."""
    from mnist_cli.config import read_yaml, validate
    from mnist_cli.record import read_result

    config = Path(spec.out_dir) / "config.yaml"  # a run writes it first: finished or not, the folder's run has this config
    try:
        differ = config.is_file() and _differences(validate(read_yaml(config)), spec.config)
        result = read_result(spec.out_dir)
    except MnistError as e:
        return pending(spec, "failed", f"{first_line(e)}; delete the folder to train the run again")
    if differ:
        return pending(spec, "failed", f"{spec.out_dir} holds a run of another config ({differ}); use another --out")
    return _done(spec, result) if result else None


def _done(spec: RunSpec, result: Any) -> RunRow:
    return replace(pending(spec, "done"), **{k: getattr(result, k) for k in FROM_RESULT})


def execute(spec: RunSpec, should_stop: Callable[[], bool]) -> RunRow:
    """Train (or finish, from last.pt) one run into its folder; failures become a failed row, never an exception.

    Once `should_stop()` is true no run starts: it comes back pending, its folder untouched.
    """
    from mnist_cli.checkpoint import load_checkpoint
    from mnist_cli.config import validate
    from mnist_cli.training.loop import train
    from mnist_cli.training.rundir import RunDir

    run_dir = RunDir(Path(spec.out_dir))
    if should_stop() or not _wait_for_lock(run_dir.lock_file, should_stop):
        return pending(spec)
    done = read_row(spec)  # finished by an earlier task while this one waited, or another config's run
    if done is not None:
        return done
    try:
        resume_from = load_checkpoint(run_dir.last) if run_dir.last.is_file() else None
        result = train(validate(spec.config), run_dir, resume_from=resume_from, should_stop=should_stop, mlflow=spec.mlflow)
    except TrainingInterrupted:
        return pending(spec, "interrupted")
    except MnistError as e:
        return pending(spec, "failed", first_line(e))
    except Exception as e:  # a bug in one run must not end the other runs; its type says it is one
        return pending(spec, "failed", f"{type(e).__name__}: {first_line(e)}")
    return _done(spec, result)


def _wait_for_lock(lock: Path, should_stop: Callable[[], bool]) -> bool:
    """Wait while a task of a killed sweep, not yet ended by its cluster, holds the run's lock; False if stopped."""
    while lock.is_file():  # only tested and let go here: `train` takes it
        try:
            with filelock.FileLock(lock, timeout=LOCK_POLL_S):
                return True
        except filelock.Timeout:
            if should_stop():
                return False
    return True


def _differences(stored: Any, planned: dict[str, Any]) -> str:
    """'train.lr: 0.003 there, 0.01 now; ...' for keys (other than where it ran) that differ; '' when none do."""
    from mnist_cli.config import validate
    from mnist_cli.training.plan import config_differences

    return "; ".join(f"{key}: {a!r} there, {b!r} now" for key, a, b in config_differences(stored, validate(planned)))
