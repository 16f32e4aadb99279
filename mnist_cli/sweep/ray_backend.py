"""Many runs as Ray tasks, on a cluster or a Ray started here: the function a local worker calls, one task per run.

Plain tasks rather than Ray Tune: a fixed grid needs none of Tune's trial folders, logging or scheduler, and a run in
a sweep stays the same as `mnist train`.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

from mnist_cli.errors import MnistError, first_line
from mnist_cli.sweep.run import RunRow, RunSpec, StopFile, execute, pending, worker_state

POLL_S = 0.5
PROBE_S = 5  # an address where nothing answers: Ray itself would retry for minutes
GCS_WAIT = "RAY_gcs_server_port_wait_time_s"  # seconds ray.init tries an address that answers but is not Ray
RETRIES = 3  # a task whose worker or node dies runs again elsewhere and resumes from the run's last.pt

_entered: list[object] = []  # a Ray worker keeps its threads and the parsed dataset from its first task to its last


def import_ray():
    """The ray module, or one clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise MnistError(
            '--backend ray needs Ray, which is not installed: pip install -e ".[ray]" (or make install-ray)'
        ) from None
    return ray


@contextlib.contextmanager
def joined(address: str | None, cpus: int | None) -> Iterator[int]:
    """Ray joined at `address` (auto, HOST:PORT, ray://HOST:10001) or started here with `cpus` CPUs, for the block.

    Yields the CPUs of the largest node, so that a run's thread budget always fits on one.
    """
    ray = import_ray()
    try:
        if address is None:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        else:  # something that is not Ray at the address: Ray's own 20 tries, one a second, cut to PROBE_S
            with mock.patch.dict(os.environ, {GCS_WAIT: os.environ.get(GCS_WAIT, str(PROBE_S))}):
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except Exception as e:  # ConnectionError, an authentication error, a version mismatch: Ray's own words
        raise MnistError(f"cannot start or join Ray at {address or 'this machine'}: {' '.join(str(e).split())[:300]}") from None
    try:
        yield int(max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]), default=1)) or 1
    finally:
        ray.shutdown()


def probe(address: str | None) -> None:
    """Ray installed, and something listening at `address`: one line within seconds otherwise (Ray would say nothing)."""
    import_ray()
    if address == "auto":
        with contextlib.suppress(Exception):  # Ray's own lookup of RAY_ADDRESS and the cluster `ray start` made here
            from ray._private.services import canonicalize_bootstrap_address

            address = canonicalize_bootstrap_address("auto") or address
    if address in (None, "auto"):
        return  # Ray starts here, or finds nothing recorded and ray.init says so at once
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_S).close()
    except (OSError, ValueError) as e:
        reason = "not HOST:PORT" if isinstance(e, ValueError) else (e.strerror or str(e) or type(e).__name__)
        raise MnistError(
            f"no Ray cluster answers at {address} ({reason}); start one with `ray start --head` or check --address"
        ) from None


def run_ray(
    specs: list[RunSpec],
    *,
    threads: int,
    sweep_dir: Path,
    should_stop: Callable[[], bool],
    finished: Callable[[int, RunRow], None],
) -> None:
    """Train `specs` as Ray tasks of `threads` CPUs each on the Ray joined by `joined`; `finished(index, row)` as each ends.

    A stop asked here reaches every task through the sweep folder's stop file: tasks not started come back pending.
    """
    ray = import_ray()
    stop = StopFile(sweep_dir)
    task = ray.remote(num_cpus=threads, max_retries=RETRIES)(ray_task)
    refs = {task.remote(spec, threads, str(sweep_dir)): i for i, spec in enumerate(specs)}
    try:
        while refs:
            if should_stop():
                stop.path.touch()
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
            for ref in ready:
                index = refs.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as e:  # its node or worker died more than RETRIES times
                    row = pending(specs[index], "failed", f"Ray task failed: {' '.join(first_line(e).split())[:300]}")
                finished(index, row)
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)


def ray_task(spec: RunSpec, threads: int, sweep_dir: str) -> RunRow:
    """Runs inside a Ray worker: the run, with the worker's threads and dataset set up at its first task."""
    if not _entered:
        _entered.append(worker_state(threads).__enter__())
    return execute(spec, StopFile(sweep_dir))
