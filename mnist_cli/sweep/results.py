"""A sweep's results: runs.csv (one row per run), cells.csv (mean and spread over seeds per cell), the best cell."""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnist_cli.disk import atomic_write
from mnist_cli.naming import value_text
from mnist_cli.sweep.run import RunRow

RUNS_CSV, CELLS_CSV = "runs.csv", "cells.csv"
RUN_COLUMNS = ("seed", "status", "parameters", "best_epoch", "val_accuracy", "test_accuracy", "test_loss", "train_seconds")
RUN_COLUMNS += ("node",)  # the host it trained on, and the Ray node on a cluster


@dataclass(frozen=True)
class Cell:
    """One combination of swept values over its seeds. Accuracies are fractions; std is the sample std (n - 1)."""

    params: dict[str, Any]
    n: int  # finished runs
    failed: int
    test_accuracy_mean: float | None
    test_accuracy_std: float | None  # None below 2 finished runs
    val_accuracy_mean: float | None
    val_accuracy_std: float | None
    parameters: float | None
    train_seconds_mean: float | None

    def as_dict(self) -> dict[str, Any]:
        """The `--json` row."""
        return {k: v for k, v in asdict(self).items() if k != "failed"}


def summarize_cells(rows: list[RunRow]) -> list[Cell]:
    """One Cell per distinct `params`, in the order the rows come."""
    groups: dict[str, list[RunRow]] = {}
    for r in rows:
        groups.setdefault(_key(r.params), []).append(r)
    return [_cell(group) for group in groups.values()]


def _cell(group: list[RunRow]) -> Cell:
    done = [r for r in group if r.status == "done"]
    test = [r.test_accuracy for r in done if r.test_accuracy is not None]
    val = [r.val_accuracy for r in done if r.val_accuracy is not None]
    return Cell(
        params=group[0].params,
        n=len(done),
        failed=sum(r.status == "failed" for r in group),
        test_accuracy_mean=_mean(test),
        test_accuracy_std=_std(test),
        val_accuracy_mean=_mean(val),
        val_accuracy_std=_std(val),
        parameters=_mean([r.parameters for r in done if r.parameters is not None]),
        train_seconds_mean=_mean([r.train_seconds for r in done if r.train_seconds is not None]),
    )


def best_cell(cells: list[Cell]) -> Cell | None:
    """The cell with the highest mean validation accuracy (test accuracy only when there is no validation split).

    Chosen on validation, like a run's best epoch: picking by test accuracy would make the reported test figure optimistic.
    """
    scored = [(c.val_accuracy_mean if c.val_accuracy_mean is not None else c.test_accuracy_mean, c) for c in cells]
    scored = [(score, c) for score, c in scored if score is not None]
    return max(scored, key=lambda sc: sc[0])[1] if scored else None


def write_results(out_dir: Path, keys: list[str], runs: list[RunRow], cells: list[Cell]) -> None:
    """runs.csv and cells.csv, each replaced atomically (a reader never sees half a file)."""
    table = [
        [*(_text(r.params.get(k)) for k in keys), *(_text(getattr(r, c)) for c in RUN_COLUMNS), _rel(r, out_dir), r.error]
        for r in runs
    ]
    _write_csv(out_dir / RUNS_CSV, [*keys, *RUN_COLUMNS, "out_dir", "error"], table)
    cell_columns = ["n", "failed", "val_accuracy_mean", "val_accuracy_std", "test_accuracy_mean", "test_accuracy_std"]
    rows = [
        [
            *(_text(c.params.get(k)) for k in keys),
            *(_text(getattr(c, col)) for col in cell_columns),
            _text(c.parameters),
            _text(c.train_seconds_mean),
        ]
        for c in cells
    ]
    _write_csv(out_dir / CELLS_CSV, [*keys, *cell_columns, "parameters", "train_seconds_mean"], rows)


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    atomic_write(path, lambda f: f.write(text.encode()))


def _rel(row: RunRow, out_dir: Path) -> str:
    path = Path(row.out_dir)
    return str(path.relative_to(out_dir)) if path.is_relative_to(out_dir) else str(path)


def _text(value: Any) -> Any:
    """A CSV field: numbers in full precision (repr), lists as JSON, None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value_text(value)


def _key(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={value_text(v)}" for k, v in params.items())


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) >= 2 else None
