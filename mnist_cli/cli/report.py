"""`mnist report`: a run's figures, a self-contained report.html and report.md, and its verdicts in plain words."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    from mnist_cli.cli.ui import consoles

    stdout, _ = consoles()
    render_report(stdout, result.as_dict())


def render_report(console: Any, result: dict[str, Any]) -> None:
    """The verdicts, then what was written and where: plain text, coloured on a terminal."""
    from rich.text import Text

    wrong = round((1 - result["test_accuracy"]) * result["test_images"])
    lines = [
        Text(f"{result['run_dir']}: test accuracy {result['test_accuracy']:.2%} ({wrong:,} of {result['test_images']:,} wrong)")
    ]
    lines += verdict_lines(result["verdicts"])
    figures = sum(1 for f in result["files"] if f.endswith(".png"))
    lines.append(Text(f"wrote {figures} figures, report.html and report.md to {result['out_dir']}"))
    lines.append(Text.assemble("report: ", (result["html"], "bold")))
    for line in lines:
        console.print(line, soft_wrap=True)


SEVERITY_STYLES = {"error": "bold red", "warning": "bold yellow", "info": "bold blue"}


def verdict_lines(verdicts: list[dict[str, Any]]) -> list[Any]:
    """Each verdict as 'severity: message', then its evidence and suggestion indented beneath."""
    from rich.text import Text

    from mnist_cli.report.pages import evidence_text

    if not verdicts:
        return [Text("no warnings: nothing in this run's records crossed a threshold")]
    lines = []
    for v in verdicts:
        severity = str(v.get("severity", ""))
        lines.append(Text.assemble((severity, SEVERITY_STYLES.get(severity, "bold")), f": {v.get('message', '')}"))
        if evidence := evidence_text(v.get("evidence")):
            lines.append(Text(f"    evidence: {evidence}"))
        if v.get("suggestion"):
            lines.append(Text(f"    suggestion: {v['suggestion']}"))
    return lines
