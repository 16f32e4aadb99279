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
RUN_COLUMNS += ("node", "out_dir", "error")
CELL_COLUMNS = ("n", "failed", "val_accuracy_mean", "val_accuracy_std", "test_accuracy_mean", "test_accuracy_std")
CELL_COLUMNS += ("parameters", "train_seconds_mean")


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
        groups.setdefault(",".join(map(value_text, r.params.values())), []).append(r)
    return [_cell(group) for group in groups.values()]


def _cell(group: list[RunRow]) -> Cell:
    done = [r for r in group if r.status == "done"]
    failed = sum(r.status == "failed" for r in group)
    test, val = ([getattr(r, f) for r in done if getattr(r, f) is not None] for f in ("test_accuracy", "val_accuracy"))
    return Cell(
        group[0].params, len(done), failed, *_spread(test), *_spread(val), _mean(done, "parameters"), _mean(done, "train_seconds")
    )


def best_cell(cells: list[Cell]) -> Cell | None:
    """The cell with the highest mean validation accuracy (test accuracy only when there is no validation split).

    Chosen on validation, like a run's best epoch: picking by test accuracy would make the reported test figure optimistic.
    """
    scored = [(c.val_accuracy_mean if c.val_accuracy_mean is not None else c.test_accuracy_mean, c) for c in cells]
    return max(((s, c) for s, c in scored if s is not None), key=lambda sc: sc[0], default=(None, None))[1]


def write_results(out_dir: Path, keys: list[str], runs: list[RunRow], cells: list[Cell]) -> None:
    """runs.csv and cells.csv, each replaced atomically (a reader never sees half a file)."""
    _write_csv(out_dir / RUNS_CSV, keys, RUN_COLUMNS, [{**asdict(r), "out_dir": _relative(r.out_dir, out_dir)} for r in runs])
    _write_csv(out_dir / CELLS_CSV, keys, CELL_COLUMNS, [asdict(c) for c in cells])


def _write_csv(path: Path, keys: list[str], columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*keys, *columns])
    writer.writerows([*(_text(row["params"].get(k)) for k in keys), *(_text(row[c]) for c in columns)] for row in rows)
    text = buffer.getvalue()
    atomic_write(path, lambda f: f.write(text.encode()))


def _relative(path: str, out_dir: Path) -> str:
    return str(Path(path).relative_to(out_dir)) if Path(path).is_relative_to(out_dir) else path


def _text(value: Any) -> Any:
    """A CSV field: numbers in full precision (repr), lists as JSON, None as empty."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else value_text(value)


def _spread(values: list[float]) -> tuple[float | None, float | None]:
    """(mean, sample std): None for the mean of nothing and the std of fewer than two."""
    return (statistics.fmean(values) if values else None), (statistics.stdev(values) if len(values) > 1 else None)


def _mean(rows: list[RunRow], field: str) -> float | None:
    values = [getattr(r, field) for r in rows if getattr(r, field) is not None]
    return statistics.fmean(values) if values else None
