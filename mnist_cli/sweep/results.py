"""A sweep's results: runs.csv (one row per run), cells.csv (mean and spread over seeds per cell), the best cell, and
their pictures as matplotlib Figures (never pyplot's global state): `draw` saves them as PNGs."""

from __future__ import annotations

import csv
import io
import itertools
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_cli.disk import atomic_write
from mnist_cli.naming import value_text
from mnist_cli.sweep.run import RunRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RUNS_CSV, CELLS_CSV = "runs.csv", "cells.csv"
HEATMAP, SCATTER = "heatmap.png", "accuracy-vs-parameters.png"
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
    fields = ("test_accuracy", "val_accuracy", "parameters", "train_seconds")
    test, val, size, seconds = (_spread([getattr(r, f) for r in done if getattr(r, f) is not None]) for f in fields)
    return Cell(group[0].params, len(done), sum(r.status == "failed" for r in group), *test, *val, size[0], seconds[0])


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


def draw(out: Path, keys: list[str], runs: list[RunRow], cells: list[Cell]) -> list[str]:
    """heatmap.png and accuracy-vs-parameters.png in `out`, when there is a swept key and a finished run to show."""
    if not keys or not any(r.status == "done" for r in runs):
        return []
    for name, fig in ((HEATMAP, heatmap(runs, keys)), (SCATTER, accuracy_vs_parameters(cells, keys))):
        atomic_write(out / name, lambda f, fig=fig: fig.savefig(f, format="png", dpi=110))
    return [str(out / HEATMAP), str(out / SCATTER)]


def heatmap(runs: list[RunRow], keys: list[str]) -> Figure:
    """Mean ± std of the test accuracy over the first two swept keys; with more, a square pools the others' runs."""
    from matplotlib.figure import Figure

    values = [list({value_text(r.params[k]): None for r in runs}) for k in keys[:2]]  # in grid order
    rows, cols = values[0], (values[1] if len(keys) > 1 else [""])
    accs: dict[tuple[str, str], list[float]] = {}  # (row, column) -> its finished runs' test accuracies, in %
    for x in runs:
        if x.status == "done" and x.test_accuracy is not None:
            at = (value_text(x.params[keys[0]]), value_text(x.params[keys[1]]) if len(keys) > 1 else "")
            accs.setdefault(at, []).append(x.test_accuracy * 100)
    means = {at: statistics.fmean(a) for at, a in accs.items()}
    fig = Figure(figsize=(1.4 * len(cols) + 2.2, 0.9 * len(rows) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow([[means.get((r, c), math.nan) for c in cols] for r in rows], cmap="viridis", aspect="auto")
    middle = (max(means.values()) + min(means.values())) / 2 if means else 0
    for (i, r), (j, c) in itertools.product(enumerate(rows), enumerate(cols)):
        a = accs.get((r, c), [])
        std = f"± {statistics.stdev(a):.2f}" if len(a) > 1 else ("n=1" if a else "no run")
        label, dark = (f"{means[r, c]:.2f}\n{std}", means[r, c] < middle) if a else (std, False)
        ax.text(j, i, label, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xticks(range(len(cols)), cols) if len(keys) > 1 else ax.set_xticks([])
    ax.set(ylabel=keys[0], xlabel=keys[1] if len(keys) > 1 else "")
    pooled = f"; pooled over {', '.join(keys[2:])}" if len(keys) > 2 else ""
    ax.set_title(f"test accuracy (%), mean ± std over seeds{pooled}", fontsize=9)
    fig.colorbar(image, ax=ax, label="mean test accuracy (%)")
    return fig


def accuracy_vs_parameters(cells: list[Cell], keys: list[str]) -> Figure:
    """Mean test accuracy per cell against its parameters (log scale), error bars one std; a series per first-key value."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, NullLocator

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    series: dict[str, list[Cell]] = {}
    for c in cells:
        if c.test_accuracy_mean is not None and c.parameters:
            series.setdefault(value_text(c.params[keys[0]]) if keys else "runs", []).append(c)
    for name, group in series.items():
        group = sorted(group, key=lambda c: c.parameters or 0)
        ax.errorbar(
            [c.parameters for c in group],
            [c.test_accuracy_mean * 100 for c in group],
            yerr=[(c.test_accuracy_std or 0) * 100 for c in group],
            marker="o",
            capsize=3,
            label=f"{keys[0]}={name}" if keys else name,
        )
    ax.set(xscale="log", xlabel="parameters (log scale)", ylabel="test accuracy (%), mean ± std")
    # Each model size its own labelled tick: log-scale decades alone leave sizes such as 12,730 and 50,890 unlabelled.
    sizes = sorted({c.parameters for group in series.values() for c in group})
    if 0 < len(sizes) <= 8:
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(sizes, [f"{p / 1000:,.1f}k" if p < 10**6 else f"{p / 10**6:,.2f}M" for p in sizes], rotation=30)
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap when the sizes span under a decade
    ax.set_title("test accuracy against model size", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return fig
