"""`mnist report`: a run's figures, a self-contained report.html and report.md, and its verdicts in plain words."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mnist_cli.cli.app import print_json, user_errors


def report(
    run: Annotated[Path, typer.Argument(help="A run folder written by `mnist train`, or a checkpoint inside one.")],
    out: Annotated[Path | None, typer.Option(help="Where to write the report (default: <run folder>/report/).")] = None,
    data_root_option: Annotated[
        Path | None,
        typer.Option("--data-root", help="Folder holding MNIST/raw/ (default: the run's, else $MNIST_DATA_DIR, else ./data)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the files written and the verdicts as JSON.")] = False,
) -> None:
    """Figures (curves, layer health, confusion matrix, first-layer weights, mistakes) as PNGs and one report.html.

    Prints the verdicts (each with its evidence and a suggestion) and where report.html is.
    """
    with user_errors():
        from mnist_cli.report.build import build_report

        result = build_report(run, out, data_root_option)
    if as_json:
        print_json(result.as_dict())
        return
    from rich.text import Text

    from mnist_cli.cli.ui import consoles
    from mnist_cli.report.pages import evidence_text

    stdout, _ = consoles()
    wrong = f"{result.mistakes:,} of {result.test_images:,} wrong"
    lines = [Text(f"{result.run_dir}: test accuracy {result.test_accuracy:.2%} ({wrong})")]
    for v in result.verdicts:
        lines.append(Text.assemble((v.severity, SEVERITY_STYLES[v.severity]), f": {v.message}"))
        lines += [Text(f"    evidence: {evidence_text(v.evidence)}"), Text(f"    suggestion: {v.suggestion}")]
    if not result.verdicts:
        lines.append(Text("no warnings: nothing in this run's records crossed a threshold"))
    figures = sum(1 for f in result.files if f.suffix == ".png")
    lines.append(Text(f"wrote {figures} figures, report.html and report.md to {result.out_dir}"))
    lines.append(Text.assemble("report: ", (str(result.html), "bold")))
    for line in lines:
        stdout.print(line, soft_wrap=True)


SEVERITY_STYLES = {"warning": "bold yellow", "info": "bold blue"}
