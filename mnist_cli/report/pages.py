"""report.html (one self-contained file: images embedded as data URIs, no external references) and report.md."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from typing import Any

SEVERITY_COLORS = {"error": "#b00020", "warning": "#b35c00", "info": "#1a5fb4"}  # anything else: grey

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


def evidence_text(evidence: Any) -> str:
    """A verdict's evidence as one line: text as it is, a mapping as `key value, ...`, a list joined."""
    if evidence is None:
        return ""
    if isinstance(evidence, dict):
        return ", ".join(f"{k} {_number(v)}" for k, v in evidence.items())
    if isinstance(evidence, list | tuple):
        return "; ".join(evidence_text(e) for e in evidence)
    return str(evidence)


def _number(value: Any) -> str:
    """0.000012 -> 1.2e-05, nested mappings in parentheses, lists in brackets."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "(" + evidence_text(value) + ")"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return str(value)


def html_page(title: str, facts: list[tuple[str, str]], verdicts: list[dict[str, Any]], pictures: list[Picture]) -> str:
    """The whole report as one HTML file that opens offline: every image is a base64 data URI."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        '<table class="facts">',
        *(f"<tr><td>{e(label)}</td><td>{e(value)}</td></tr>" for label, value in facts),
        "</table>",
        "<h2>Verdicts</h2>",
    ]
    parts += [_verdict_html(v) for v in verdicts] or ["<p>No warnings: nothing in this run's records crossed a threshold.</p>"]
    for picture in pictures:
        data = base64.b64encode(picture.png).decode("ascii")
        parts += [
            f"<h2>{e(picture.title)}</h2>",
            f"<figure><figcaption>{e(picture.caption)}</figcaption>",
            f'<img src="data:image/png;base64,{data}" alt="{e(picture.title)}"></figure>',
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _verdict_html(v: dict[str, Any]) -> str:
    e = html.escape
    severity = str(v.get("severity", ""))
    color = SEVERITY_COLORS.get(severity, "#666")
    lines = [
        f'<div class="verdict" style="border-left-color: {color}">',
        f'<span class="sev" style="color: {color}">{e(severity)}</span> {e(str(v.get("message", "")))}',
    ]
    if evidence := evidence_text(v.get("evidence")):
        lines.append(f'<div class="evidence"><span class="label">evidence:</span> {e(evidence)}</div>')
    if v.get("suggestion"):
        lines.append(f'<div class="suggestion"><span class="label">suggestion:</span> {e(str(v["suggestion"]))}</div>')
    return "\n".join([*lines, "</div>"])


def markdown_page(title: str, facts: list[tuple[str, str]], verdicts: list[dict[str, Any]], pictures: list[Picture]) -> str:
    """A short Markdown summary beside the PNGs it links to."""
    lines = [f"# {title}", "", *(f"- **{label}**: {value}" for label, value in facts), "", "## Verdicts", ""]
    for v in verdicts:
        lines.append(f"- **{v.get('severity', '')}**: {v.get('message', '')}")
        if evidence := evidence_text(v.get("evidence")):
            lines.append(f"  - evidence: {evidence}")
        if v.get("suggestion"):
            lines.append(f"  - suggestion: {v['suggestion']}")
    if not verdicts:
        lines.append("No warnings: nothing in this run's records crossed a threshold.")
    for picture in pictures:
        lines += ["", f"## {picture.title}", "", picture.caption, "", f"![{picture.title}]({picture.file})"]
    return "\n".join(lines) + "\n"
