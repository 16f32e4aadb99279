"""Many runs on this machine: a spawn ProcessPoolExecutor whose workers import torch and load the dataset once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from mnist_cli.sweep.run import RunRow, RunSpec, execute, pending, worker_state

POLL_S = 0.2  # how often the sweep process looks at the Ctrl-C flag while runs train
DIED = "a worker process died (killed, or out of memory?)"

_stop: list[Callable[[], bool]] = []  # in a worker: the sweep's stop event, set by the initializer


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
