"""Many runs on a Ray cluster (or a Ray started on this machine): one Ray task per run, same function as locally.

Plain Ray tasks rather than Ray Tune: a sweep here is a fixed grid whose runs write their own folders and whose
results are aggregated by this package; Tune would add its own trial folders, result logging and scheduler, none of
which a fixed grid needs, and would make a run in a sweep differ from `mnist train`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from mnist_cli.errors import MnistError
from mnist_cli.sweep.run import RunRecord, RunSpec, StopFile, execute, pending

INSTALL_HINT = 'pip install -e ".[ray]" (or make install-ray)'
POLL_S = 0.5

# A Ray worker process keeps its state between tasks: torch's threads and the parsed dataset are set up once.
_worker_state = contextlib.ExitStack()
_worker_threads: list[int] = []


def import_ray():
    """The ray module, or one clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise MnistError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def run_ray(
    specs: list[RunSpec],
    *,
    threads: int,
    cpus: int | None,
    address: str | None,
    sweep_dir: Path,
    should_stop: Callable[[], bool],
    finished: Callable[[int, RunRecord], None],
) -> None:
    """Train `specs` as Ray tasks of `threads` CPUs each; without `address`, on a Ray started here with `cpus` CPUs."""
    ray = import_ray()
    try:
        if address is None:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise MnistError(f"cannot start or join Ray at {address or 'this machine'}: {' '.join(str(e).split())[:300]}") from None
    stop = StopFile(sweep_dir)
    refs: dict = {}
    try:
        task = ray.remote(num_cpus=threads, max_retries=0)(ray_task)
        refs = {task.remote(spec, threads, str(sweep_dir)): i for i, spec in enumerate(specs)}
        while refs:
            if should_stop() and not stop.path.exists():
                stop.request()
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
            for ref in ready:
                index = refs.pop(ref)
                try:
                    record = ray.get(ref)
                except Exception as e:  # the task's worker died, or Ray lost the node
                    record = pending(specs[index], "failed", f"Ray task failed: {' '.join(str(e).split())[:300]}")
                finished(index, record)
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        ray.shutdown()


def ray_task(spec: RunSpec, threads: int, sweep_dir: str) -> RunRecord:
    """Runs inside a Ray worker: set threads and keep the dataset on the first task, then train the run."""
    if _worker_threads != [threads]:
        import torch

        from mnist_cli.data.datasets import datasets_kept_loaded

        torch.set_num_threads(threads)
        if not _worker_threads:
            _worker_state.enter_context(datasets_kept_loaded())
        _worker_threads[:] = [threads]
    return execute(spec, StopFile(sweep_dir))
