"""What the terminal sees of a sweep: one progress bar for all runs, a line per run when piped, the cells table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from mnist_cli.cli.ui import BarReporter
from mnist_cli.naming import value_text
from mnist_cli.sweep.grid import cell_name, short_keys
from mnist_cli.sweep.runner import RunFinished, SweepStarted


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2%}"


def _spread(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean * 100:.2f} ± {std * 100:.2f}" if std is not None else f"{mean * 100:.2f}"


def run_line(row: Any, done: int, total: int, where_ran: bool = False) -> str:
    """One settled run as a plain line."""
    if row.status == "done":
        what = f"done  val {_pct(row.val_accuracy)}  test {_pct(row.test_accuracy)}  {row.train_seconds:.1f}s"
        what += f"  on {row.node}" if where_ran else ""
    else:
        what = row.status + (f": {row.error}" if row.error else "")
    return f"[{done}/{total}] {cell_name(row.params)}/seed={row.seed}  {what}"


class SweepReporter(BarReporter):
    """Receives sweep events: one rich bar (runs done/total, elapsed, ETA, best cell) on a terminal, plain lines otherwise."""

    def columns(self) -> list[Any]:
        return [
            TextColumn("sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[best]}"),
        ]

    def __call__(self, event: SweepStarted | RunFinished) -> None:
        if self.quiet:
            return
        if isinstance(event, SweepStarted):
            self.on_ray = event.backend == "ray"  # then each run's line says which node trained it
            reused = f", {event.reused} already finished" if event.reused else ""
            where = f"{event.jobs} local worker{'s' if event.jobs != 1 else ''}" if event.backend == "local" else "Ray"
            where += f" at {event.address}" if event.address else ""
            if event.note:
                self._print(event.note)
            self._print(f"sweep of {event.total} runs{reused}: {where}, {event.threads} thread(s) per run -> {event.out_dir}")
            if self.progress is not None:  # only this invocation's runs count towards the ETA: reused runs took no time now
                self.task = self.progress.add_task("", total=event.total - event.reused, best="")
            return
        if event.row.status == "pending":
            return  # never started (a stop was asked): the closing message counts them
        if self.progress is None or event.row.status == "failed":
            self._print(run_line(event.row, event.done, event.total, self.on_ray))
        if self.progress is not None:
            self.progress.update(self.task, advance=1, best=best_text(event.best))


def best_text(cell: Any) -> str:
    if cell is None:
        return ""
    return f"best so far: {cell_name(cell.params)} val {_pct(cell.val_accuracy_mean)} test {_pct(cell.test_accuracy_mean)}"


def render_cells(console: Console, result: Any) -> None:
    """The cells: a rich table on a terminal, tab-separated lines when piped; the best cell (by validation) marked."""
    shorts = short_keys(result.keys)
    header = [*(shorts[k] for k in result.keys), "n", "val acc %", "test acc %", "parameters", "seconds", ""]
    rows = [
        [
            *(Text(value_text(c.params[k])) for k in result.keys),
            str(c.n) + (f" ({c.failed} failed)" if c.failed else ""),
            _spread(c.val_accuracy_mean, c.val_accuracy_std),
            _spread(c.test_accuracy_mean, c.test_accuracy_std),
            f"{c.parameters:,.0f}" if c.parameters else "n/a",
            f"{c.train_seconds_mean:.1f}" if c.train_seconds_mean is not None else "n/a",
            "*best" if c is result.best else "",
        ]
        for c in result.cells
    ]
    if console.is_terminal:
        table = Table(title=Text(f"{result.out_dir}: mean ± std over seeds"))
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i < len(result.keys) else "right")
        for row in rows:
            table.add_row(*row, style="bold" if row[-1] else None)
        console.print(table)
    else:
        console.file.write("".join("\t".join(map(str, row)).rstrip() + "\n" for row in [header, *rows]))
        console.file.flush()
    files = ", ".join(["runs.csv", "cells.csv", *(f.rsplit("/", 1)[-1] for f in result.figures)])
    console.print(Text(f"wrote {files} in {result.out_dir}"), soft_wrap=True)


def render_failures(console: Console, result: Any) -> None:
    """Every failed run with its error, on stderr."""
    console.print(Text(f"{len(result.failed)} of {len(result.runs)} runs failed:"), soft_wrap=True)
    for r in result.failed:
        console.print(Text(f"  {cell_name(r.params)}/seed={r.seed}: {r.error}"), soft_wrap=True)
