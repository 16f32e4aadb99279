"""Many runs on this machine: N spawned worker processes, each importing torch and loading the dataset once."""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
from collections.abc import Callable
from pathlib import Path

from mnist_cli.sweep.run import RunRecord, RunSpec, StopFile, execute, pending

POLL_S = 0.2  # how often the sweep process looks at its workers and the Ctrl-C flag while waiting for results
PR_SET_PDEATHSIG = 1


def run_local(
    specs: list[RunSpec],
    *,
    jobs: int,
    threads: int,
    sweep_dir: Path,
    should_stop: Callable[[], bool],
    started: Callable[[int], None],
    finished: Callable[[int, RunRecord], None],
) -> None:
    """Train `specs` on `jobs` workers with `threads` CPU threads each; `finished(index, record)` as each ends.

    When `should_stop()` turns true the workers are asked to stop after their current step (saving last.pt), and runs
    not yet started come back pending. A worker that dies (killed, out of memory) fails its run; the others go on.
    """
    if jobs == 1:
        run_inline(specs, threads=threads, should_stop=should_stop, started=started, finished=finished)
        return
    # spawn, not fork: forking a process whose torch already runs threads can deadlock the child.
    ctx = multiprocessing.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for index, spec in enumerate(specs):
        tasks.put((index, spec))
    workers = [
        ctx.Process(target=worker, args=(tasks, results, threads, str(sweep_dir), os.getpid()), daemon=True)
        for _ in range(min(jobs, len(specs)))
    ]
    for _ in workers:
        tasks.put(None)
    # Started with SIGINT blocked, which they inherit: Ctrl-C reaches the whole process group, and the sweep process
    # alone decides what it means (stop after the current step), even while a worker is still starting up.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if hasattr(signal, "pthread_sigmask") else None
    try:
        for w in workers:
            w.start()
    finally:
        if blocked is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    stop = StopFile(sweep_dir)
    holding: dict[int, int] = {}  # worker pid -> index of the run it trains
    left = set(range(len(specs)))
    try:
        while left:
            if should_stop() and not stop.path.exists():
                stop.request()
            try:
                message = results.get(timeout=POLL_S)
            except queue.Empty:
                _reap(workers, holding, left, specs, finished)
                continue
            kind, pid, index, record = message
            if kind == "started":
                holding[pid] = index
                started(index)
            else:
                holding.pop(pid, None)
                left.discard(index)
                finished(index, record)
    except BaseException:  # a second Ctrl-C, or a bug here: the workers go at once (their files are written atomically)
        for w in workers:
            w.kill()
        raise
    finally:
        for w in workers:
            w.join()
        tasks.cancel_join_thread()
        results.cancel_join_thread()


def run_inline(specs: list[RunSpec], *, threads: int, should_stop, started, finished) -> None:
    """One job: the runs one after another in this process, which has torch imported already (no worker to start)."""
    import torch

    from mnist_cli.data.datasets import datasets_kept_loaded

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with datasets_kept_loaded():
            for index, spec in enumerate(specs):
                started(index)
                finished(index, execute(spec, should_stop))
    finally:
        torch.set_num_threads(saved)


def _reap(workers, holding: dict[int, int], left: set[int], specs: list[RunSpec], finished) -> None:
    """Fail the run of each worker that died; when none is left, the runs nobody took fail too."""
    for w in workers:
        if w.exitcode is not None and w.pid in holding:
            index = holding.pop(w.pid)
            left.discard(index)
            finished(index, pending(specs[index], "failed", f"worker process died (exit code {w.exitcode})"))
    if left and all(w.exitcode is not None for w in workers):
        for index in sorted(left):
            finished(index, pending(specs[index], "failed", "no worker process was left to train it"))
        left.clear()


def worker(tasks, results, threads: int, sweep_dir: str, parent_pid: int) -> None:
    """A worker process: its share of threads, the dataset parsed once, then runs until the queue says stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # where SIGINT could not be blocked at start; the sweep process decides
    _die_with_parent()
    import torch

    from mnist_cli.data.datasets import datasets_kept_loaded

    torch.set_num_threads(threads)
    should_stop = StopFile(sweep_dir, parent_pid)
    with datasets_kept_loaded():
        while True:
            item = tasks.get()
            if item is None:
                return
            index, spec = item
            results.put(("started", os.getpid(), index, None))
            results.put(("finished", os.getpid(), index, execute(spec, should_stop)))


def _die_with_parent() -> None:
    """On Linux, the kernel kills this worker when the sweep process dies (even by SIGKILL): no orphan keeps training."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # elsewhere the worker notices its parent is gone at the next stop check
