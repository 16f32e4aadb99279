"""`mnist compare`: runs' curves overlaid in one figure, and a table of only the settings that differ."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mnist_cli.cli.app import print_json, user_errors

if TYPE_CHECKING:
    from rich.console import Console

    from mnist_cli.report.compare import Comparison


def compare(
    runs: Annotated[
        list[Path], typer.Argument(help="Two or more run folders written by `mnist train` (or checkpoints in them).")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Where to write compare.png and compare.md (default: checkpoints/compare/<names>/).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table and the files written as JSON.")] = False,
) -> None:
    """Validation accuracy and training loss of several runs in one figure, and a table of what differs between them.

    The table shows only the config keys whose values differ, then parameters, epochs, best validation accuracy, test
    accuracy and training seconds.
    """
    with user_errors():
        from mnist_cli.report.compare import compare_runs

        result = compare_runs(runs, out)
    if as_json:
        print_json(result.as_dict())
        return
    from mnist_cli.cli.ui import consoles, say

    stdout, stderr = consoles()
    render_comparison(stdout, result)
    # On stderr, so piped stdout is the table alone.
    say(stderr, f"wrote {result.files[0]} and {result.files[1]}")


def render_comparison(console: Console, result: Comparison) -> None:
    """A rich table on a terminal; tab-separated lines when piped, so `cut` and spreadsheets read it."""
    from rich.table import Table
    from rich.text import Text

    header, *rows = result.table()
    if not console.is_terminal:
        console.file.write("".join("\t".join(cells) + "\n" for cells in [header, *rows]))
        console.file.flush()
        return
    table = Table(title="settings that differ, and results")
    # Run names are what tells the rows apart: they fold onto a second line rather than lose their ends to an ellipsis.
    names = min(40, max(len(r.name) for r in result.runs))
    table.add_column(Text(header[0]), min_width=names, overflow="fold")
    for i, name in enumerate(header[1:], 1):
        table.add_column(Text(name), justify="right" if i > len(result.differing_keys) else "left", overflow="fold")
    for cells in rows:
        table.add_row(*(Text(c) for c in cells))
    console.print(table)
