"""Run a planned sweep: write the plan, reuse finished runs, train the rest on a backend, aggregate and draw."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from mnist_cli.disk import atomic_write
from mnist_cli.errors import MnistError
from mnist_cli.sweep.grid import SweepPlan
from mnist_cli.sweep.results import CELLS_CSV, RUNS_CSV, Cell, best_cell, summarize_cells, write_results
from mnist_cli.sweep.run import RunRecord, StopFile, finished, pending
from mnist_cli.tracking import MlflowTarget, end_sweep, start_sweep

PLAN_FILE, LOCK_FILE = "sweep.yaml", ".sweep.lock"
HEATMAP, SCATTER = "heatmap.png", "accuracy-vs-parameters.png"
BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class SweepStarted:
    total: int
    reused: int
    jobs: int
    threads: int
    backend: str
    out_dir: str


@dataclass(frozen=True)
class RunFinished:
    record: RunRecord
    done: int  # runs settled so far (finished, failed or reused), this one included
    total: int
    best: Cell | None  # the best cell so far


SweepEvent = SweepStarted | RunFinished


@dataclass(frozen=True)
class SweepResult:
    out_dir: str
    keys: list[str]
    runs: list[RunRecord]
    cells: list[Cell]
    best: Cell | None
    figures: list[str]

    @property
    def failed(self) -> list[RunRecord]:
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


def thread_budget(jobs: int | None, runs: int) -> tuple[int, int]:
    """(workers, CPU threads each): by default one worker per core; never more threads in all than cores."""
    cores = cpu_cores()
    jobs = max(1, min(jobs or cores, max(runs, 1)))
    return jobs, max(1, cores // jobs)


def run_sweep(
    plan: SweepPlan,
    *,
    backend: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    on_event: Callable[[SweepEvent], None] = lambda event: None,
    should_stop: Callable[[], bool] = lambda: False,
    mlflow: MlflowTarget | None = None,
) -> SweepResult:
    """Train every run of `plan` not already finished; runs.csv and cells.csv are rewritten as each run ends.

    With `mlflow`, the sweep is a parent run there and each run it trains a nested run."""
    if backend not in BACKENDS:
        raise MnistError(f"--backend must be local or ray, not {backend!r}")
    if backend == "ray":
        from mnist_cli.sweep.ray_backend import import_ray

        import_ray()  # before any folder is made: a missing extra is one clear error
    out = plan.out_dir
    _prepare(out)
    with _locked(out):
        text = yaml.safe_dump(plan.as_dict(), sort_keys=False)
        atomic_write(out / PLAN_FILE, lambda f: f.write(text.encode()))
        stop = StopFile(out)
        stop.clear()
        records = [finished(spec) or pending(spec) for spec in plan.runs]
        todo = [i for i, r in enumerate(records) if r.status == "pending"]
        workers, threads = thread_budget(jobs, len(todo))
        on_event(SweepStarted(len(records), len(records) - len(todo), workers, threads, backend, str(out)))
        settled = len(records) - len(todo)

        def settle(i: int, record: RunRecord) -> None:
            nonlocal settled
            records[todo[i]] = record
            settled += 1
            cells = summarize_cells(records)
            write_results(out, plan.keys, records, cells)
            on_event(RunFinished(record, settled, len(records), best_cell(cells)))

        write_results(out, plan.keys, records, summarize_cells(records))
        parent = start_sweep(mlflow, out, plan.keys) if mlflow else None
        specs = [replace(plan.runs[i], mlflow=parent) for i in todo]
        try:
            if specs and backend == "ray":
                from mnist_cli.sweep.ray_backend import run_ray

                cpus = workers * threads if jobs else None
                run_ray(
                    specs, threads=threads, cpus=cpus, address=address, sweep_dir=out, should_stop=should_stop, finished=settle
                )
            elif specs:
                from mnist_cli.sweep.local import run_local

                run_local(
                    specs,
                    jobs=workers,
                    threads=threads,
                    sweep_dir=out,
                    should_stop=should_stop,
                    started=lambda i: None,
                    finished=settle,
                )
        finally:
            stop.clear()
        cells = summarize_cells(records)
        write_results(out, plan.keys, records, cells)
        figures = draw(out, plan, records, cells)
        if parent:
            tables = [str(out / name) for name in (PLAN_FILE, RUNS_CSV, CELLS_CSV)]
            end_sweep(parent, tables + figures, ok=all(r.status == "done" for r in records))
    return SweepResult(str(out), plan.keys, records, cells, best_cell(cells), figures)


def draw(out: Path, plan: SweepPlan, records: list[RunRecord], cells: list[Cell]) -> list[str]:
    """heatmap.png and accuracy-vs-parameters.png, when there is a swept key and a finished run to show."""
    if not plan.keys or not any(r.status == "done" for r in records):
        return []
    from mnist_cli.sweep.figures import accuracy_vs_parameters, heatmap

    values = [_distinct([c[k] for c in plan.cells()]) for k in plan.keys]
    written = []
    for name, fig in ((HEATMAP, heatmap(records, plan.keys, values)), (SCATTER, accuracy_vs_parameters(cells, plan.keys))):
        atomic_write(out / name, lambda f, fig=fig: fig.savefig(f, format="png", dpi=110))
        written.append(str(out / name))
    return written


def _distinct(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _prepare(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MnistError(f"sweep folder {out} cannot be created ({e.strerror or e})") from None


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One sweep at a time per folder: a second would train the same runs twice."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(out / LOCK_FILE, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise MnistError(f"another `mnist sweep` is running into {out}; wait for it or use another --out") from None
        yield
