"""Run a planned sweep: write the plan, reuse finished runs, train the rest on a backend, aggregate and draw."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import filelock
import yaml

from mnist_cli.disk import atomic_write
from mnist_cli.errors import MnistError
from mnist_cli.sweep.grid import SweepPlan
from mnist_cli.sweep.results import CELLS_CSV, RUNS_CSV, Cell, best_cell, draw, summarize_cells, write_results
from mnist_cli.sweep.run import RunRow, StopFile, pending, read_row
from mnist_cli.tracking import MlflowTarget, end_sweep, start_sweep

PLAN_FILE, LOCK_FILE = "sweep.yaml", ".sweep.lock"
BACKENDS = ("local", "ray")
WORKER_MB = 800  # what a local worker holds: torch imported, the dataset parsed, a run training


@dataclass(frozen=True)
class SweepStarted:
    total: int
    reused: int
    jobs: int
    threads: int
    backend: str
    out_dir: str
    address: str | None
    note: str  # why fewer workers than --jobs asked for, or ""


@dataclass(frozen=True)
class RunFinished:
    row: RunRow
    done: int  # runs settled so far (finished, failed or reused), this one included
    total: int
    best: Cell | None  # the best cell so far


SweepEvent = SweepStarted | RunFinished


@dataclass(frozen=True)
class SweepResult:
    out_dir: str
    keys: list[str]
    runs: list[RunRow]
    cells: list[Cell]
    figures: list[str]

    @property
    def best(self) -> Cell | None:
        return best_cell(self.cells)

    @property
    def failed(self) -> list[RunRow]:
        return [r for r in self.runs if r.status == "failed"]

    @property
    def interrupted(self) -> bool:
        return any(r.status in ("interrupted", "pending") for r in self.runs)

    def as_dict(self) -> dict[str, Any]:
        """The `--json` object."""
        return {"out_dir": self.out_dir, "runs": [r.as_dict() for r in self.runs], "cells": [c.as_dict() for c in self.cells]}


def cpu_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def available_mb() -> int | None:
    """Memory the kernel could hand out now (Linux's MemAvailable), in MiB; None where it does not say."""
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return None


def worker_budget(jobs: int | None, runs: int) -> tuple[int, int, str]:
    """(workers, CPU threads each, why fewer than --jobs): one worker per core by default, and never more workers than
    cores, than memory holds (WORKER_MB each) or than runs, so that the workers never oversubscribe the machine."""
    cores, memory = cpu_cores(), available_mb()
    fit = max(1, memory // WORKER_MB) if memory is not None else cores
    workers = max(1, min(jobs or cores, cores, fit, runs))
    note = ""
    if jobs and workers < min(jobs, runs):
        why = f"{cores} cores" if cores <= fit else f"{memory / 1024:.1f} GiB of memory free at ~{WORKER_MB} MiB a worker"
        note = f"--jobs {jobs} capped to {workers} ({why})"
    return workers, max(1, cores // workers), note


def run_sweep(
    plan: SweepPlan,
    *,
    backend: str | None = None,
    jobs: int | None = None,
    address: str | None = None,
    on_event: Callable[[SweepEvent], None] = lambda event: None,
    should_stop: Callable[[], bool] = lambda: False,
    mlflow: MlflowTarget | None = None,
) -> SweepResult:
    """Train every run of `plan` not already finished; runs.csv and cells.csv are rewritten as each run ends.

    `backend` None means ray when an `address` is given, local otherwise. With `mlflow`, the sweep is a parent run
    there and each run it trains a nested run.
    """
    if backend not in (None, *BACKENDS):
        raise MnistError(f"--backend must be local or ray, not {backend!r}")
    if address and backend == "local":
        raise MnistError("--address joins a Ray cluster, which --backend local does not use: drop --backend local")
    backend = backend or ("ray" if address else "local")
    if backend == "ray":
        from mnist_cli.sweep.ray_backend import probe

        probe(address)  # before any folder is made: a missing extra or a wrong address is one clear error, at once
    out = plan.out_dir
    rows = [read_row(spec) or pending(spec) for spec in plan.runs]
    todo = [i for i, r in enumerate(rows) if r.status == "pending"]
    workers, threads, note = worker_budget(jobs, len(todo))
    with contextlib.ExitStack() as stack:
        if backend == "ray" and todo:  # joined before any folder is made: a wrong address leaves nothing behind
            from mnist_cli.sweep.ray_backend import joined

            largest = stack.enter_context(joined(address, workers * threads if jobs and not address else None))
            threads, note = min(threads, largest), ""
        try:
            out.mkdir(parents=True, exist_ok=True)
            stack.enter_context(filelock.FileLock(out / LOCK_FILE, timeout=0))
        except OSError as e:
            raise MnistError(f"sweep folder {out} cannot be created ({e.strerror or e})") from None
        except filelock.Timeout:  # one sweep at a time per folder: a second would train the same runs twice
            raise MnistError(f"another `mnist sweep` is running into {out}; wait for it or use another --out") from None
        text = yaml.safe_dump(plan.as_dict(), sort_keys=False)
        atomic_write(out / PLAN_FILE, lambda f: f.write(text.encode()))
        stop = StopFile(out).path
        stop.unlink(missing_ok=True)
        stack.callback(stop.unlink, missing_ok=True)
        on_event(SweepStarted(len(rows), len(rows) - len(todo), workers, threads, backend, str(out), address, note))
        settled = len(rows) - len(todo)

        def settle(i: int, row: RunRow) -> None:
            nonlocal settled
            rows[todo[i]] = row
            settled += 1
            cells = summarize_cells(rows)
            write_results(out, plan.keys, rows, cells)
            on_event(RunFinished(row, settled, len(rows), best_cell(cells)))

        write_results(out, plan.keys, rows, summarize_cells(rows))
        parent = start_sweep(mlflow, out, plan.keys) if mlflow else None
        specs = [replace(plan.runs[i], mlflow=parent) for i in todo]
        if specs and backend == "ray":
            from mnist_cli.sweep.ray_backend import run_ray

            run_ray(specs, threads=threads, sweep_dir=out, should_stop=should_stop, finished=settle)
        elif specs:
            from mnist_cli.sweep.run import run_local

            run_local(specs, jobs=workers, threads=threads, should_stop=should_stop, finished=settle)
        cells = summarize_cells(rows)
        write_results(out, plan.keys, rows, cells)
        figures = draw(out, plan.keys, rows, cells)
        if parent:
            tables = [str(out / name) for name in (PLAN_FILE, RUNS_CSV, CELLS_CSV)]
            end_sweep(parent, tables + figures, ok=all(r.status == "done" for r in rows))
    return SweepResult(str(out), plan.keys, rows, cells, figures)
