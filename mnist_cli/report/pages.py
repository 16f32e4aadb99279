"""report.html (one self-contained file: images embedded as data URIs, no external references) and report.md."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mnist_cli.report.verdicts import Verdict

SEVERITY_COLORS = {"warning": "#b35c00", "info": "#1a5fb4"}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1240px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; } h2 { font-size: 1.25em; margin-top: 1.8em; }
table.facts td { padding: 2px 14px 2px 0; vertical-align: top; } table.facts td:first-child { color: #555; }
.verdict { border-left: 5px solid #888; padding: 6px 12px; margin: 10px 0; background: #f7f7f7; }
.verdict .sev { font-weight: bold; text-transform: uppercase; font-size: 0.8em; letter-spacing: 0.05em; }
.verdict .evidence, .verdict .suggestion { margin-top: 3px; } .verdict .label { color: #555; }
figure { margin: 0; } figcaption { color: #444; max-width: 75em; margin-bottom: 8px; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
"""


@dataclass(frozen=True)
class Picture:
    """One figure of the report: its file name, heading, what to look for in it, and its PNG bytes."""

    file: str
    title: str
    caption: str
    png: bytes


def evidence_text(evidence: dict[str, Any]) -> str:
    """A verdict's evidence as one line, `key value, ...`: floats to 3 digits, mappings in parentheses, lists in brackets."""

    def number(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        if isinstance(value, dict):
            return "(" + evidence_text(value) + ")"
        if isinstance(value, list | tuple):
            return "[" + ", ".join(map(number, value)) + "]"
        return str(value)

    return ", ".join(f"{k} {number(v)}" for k, v in evidence.items())


NO_WARNINGS = "No warnings: nothing in this run's records crossed a threshold."


def html_page(title: str, facts: list[tuple[str, str]], verdicts: list[Verdict], pictures: list[Picture]) -> str:
    """The whole report as one HTML file that opens offline: every image is a base64 data URI."""
    e = html.escape
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>\n<h1>{e(title)}</h1>",
        '<table class="facts">',
        *(f"<tr><td>{e(label)}</td><td>{e(value)}</td></tr>" for label, value in facts),
        "</table>\n<h2>Verdicts</h2>",
    ]
    for v in verdicts:
        color = SEVERITY_COLORS[v.severity]
        parts += [
            f'<div class="verdict" style="border-left-color: {color}">',
            f'<span class="sev" style="color: {color}">{v.severity}</span> {e(v.message)}',
            f'<div class="evidence"><span class="label">evidence:</span> {e(evidence_text(v.evidence))}</div>',
            f'<div class="suggestion"><span class="label">suggestion:</span> {e(v.suggestion)}</div>\n</div>',
        ]
    if not verdicts:
        parts.append(f"<p>{NO_WARNINGS}</p>")
    for picture in pictures:
        data = base64.b64encode(picture.png).decode("ascii")
        parts += [
            f"<h2>{e(picture.title)}</h2>\n<figure><figcaption>{e(picture.caption)}</figcaption>",
            f'<img src="data:image/png;base64,{data}" alt="{e(picture.title)}"></figure>',
        ]
    return "\n".join([*parts, "</body></html>"]) + "\n"


def md(text: str) -> str:
    """`text` shown as written in Markdown: HTML escaped (a run named `<script>` must not run) and Markdown's marks too."""
    return re.sub(r"([\\`*_\[\]#|!])", r"\\\1", html.escape(text, quote=False))


def markdown_page(title: str, facts: list[tuple[str, str]], verdicts: list[Verdict], pictures: list[Picture]) -> str:
    """A short Markdown summary beside the PNGs it links to."""
    lines = [f"# {md(title)}", "", *(f"- **{label}**: {md(value)}" for label, value in facts), "", "## Verdicts", ""]
    for v in verdicts:
        lines += [
            f"- **{v.severity}**: {md(v.message)}",
            f"  - evidence: {md(evidence_text(v.evidence))}",
            f"  - suggestion: {md(v.suggestion)}",
        ]
    if not verdicts:
        lines.append(NO_WARNINGS)
    for picture in pictures:
        lines += ["", f"## {picture.title}", "", picture.caption, "", f"![{picture.title}]({picture.file})"]
    return "\n".join(lines) + "\n"
