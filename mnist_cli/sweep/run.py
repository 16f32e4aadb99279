"""One run of a sweep: the function every backend calls, in a worker that trains many runs one after another; and
the local backend, a spawn ProcessPoolExecutor whose workers import torch and load the dataset once."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import filelock

from mnist_cli.errors import MnistError, TrainingInterrupted, first_line
from mnist_cli.tracking import MlflowTarget

STOP = ".stop"  # in the sweep folder: asks every task, on any machine, to stop after its current step
STOP_POLL_S = 0.25  # a task looks for the stop file at most this often (cheap even on network storage)
LOCK_POLL_S = 1.0
POLL_S = 0.2  # how often the sweep process looks at the Ctrl-C flag while local workers train
DIED = "a worker process died (killed, or out of memory?)"
FROM_RESULT = ("val_accuracy", "test_accuracy", "test_loss", "best_epoch", "train_seconds", "parameters", "node")

_stop: list[Callable[[], bool]] = []  # in a local worker: the sweep's stop event, set by the initializer


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


def run_local(
    specs: list[RunSpec], *, jobs: int, threads: int, should_stop: Callable[[], bool], finished: Callable[[int, RunRow], None]
) -> None:
    """Train `specs` on `jobs` workers with `threads` CPU threads each; `finished(index, row)` as each settles.

    Once `should_stop()` is true no run starts: runs not yet handed to a worker are cancelled, the others stop after
    their current step (saving last.pt), and all come back pending or interrupted. A worker that dies (killed, out
    of memory) fails the runs it held; the rest go on in a new pool.
    """
    if jobs == 1:  # in this process, which has torch imported already
        with worker_state(threads):
            for index, spec in enumerate(specs):
                finished(index, execute(spec, should_stop))
        return
    ctx = multiprocessing.get_context("spawn")  # not fork: forking a process whose torch runs threads can deadlock
    stop = ctx.Event()
    left = dict(enumerate(specs))
    while left and not stop.is_set():
        pool = ProcessPoolExecutor(min(jobs, len(left)), ctx, initializer=_start_worker, initargs=(threads, stop, os.getpid()))
        try:
            # submit starts the workers: they inherit the mask, so Ctrl-C is the sweep's to handle
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            futures = {pool.submit(_train, spec): i for i, spec in left.items()}
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            taken, broken = set(), []  # runs handed to a worker as far as the last look saw; runs of a dead worker
            while futures:
                if should_stop() and not stop.is_set():
                    stop.set()
                    for future in futures:
                        future.cancel()  # those no worker has taken never start
                done, _ = wait(futures, timeout=POLL_S, return_when=FIRST_COMPLETED)
                taken |= {i for future, i in futures.items() if future.running()}
                for future in done:
                    i = futures.pop(future)
                    if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
                        broken.append(i)
                    else:
                        del left[i]
                        finished(i, pending(specs[i]) if future.cancelled() else future.result())
            for i in [i for i in broken if i in taken] or broken:  # the others go to a new pool
                del left[i]
                finished(i, pending(specs[i], "failed", DIED))
        except BaseException:  # a second Ctrl-C, or a bug here: the workers go at once (their files are written atomically)
            for process in list(getattr(pool, "_processes", {}).values()):  # Python 3.14 has pool.kill_workers()
                process.kill()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    for i in list(left):  # stopped while a new pool was due
        finished(i, pending(specs[i]))


def _start_worker(threads: int, stop, parent_pid: int) -> None:
    """A worker's set-up: SIGINT left to the sweep, its share of threads, the dataset kept loaded, a parent watch."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker_state(threads).__enter__()  # for the worker's life: each run reuses the parsed dataset
    _stop.append(stop.is_set)
    threading.Thread(target=_exit_with, args=(parent_pid,), daemon=True).start()


def _exit_with(parent_pid: int) -> None:
    """A sweep process killed (even by SIGKILL) leaves no worker training on: last.pt keeps what a rerun needs."""
    while os.getppid() == parent_pid:
        time.sleep(1)
    os._exit(1)


def _train(spec: RunSpec) -> RunRow:
    return execute(spec, _stop[0])
