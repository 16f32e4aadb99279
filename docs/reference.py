"""The commands and configs reference pages, rendered from the Typer app and the pydantic schema at build time.

docs/reference/commands.md and configs.md each hold one `python exec="on"` block (markdown-exec, which Zensical and
MkDocs both run) that calls a function here, so the pages cannot drift from `mnist --help` or from config.py.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

REPO = Path(__file__).resolve().parents[1]


def _cell(text: Any) -> str:
    """One Markdown table cell: newlines folded, and pipes and angle brackets (`<path>`) shown, not interpreted."""
    text = " ".join(str(text).split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    """Inline code in a table cell: a pipe inside backticks would still end the cell, so plain HTML instead."""
    return "<code>" + html.escape(text).replace("|", "&#124;") + "</code>"


def commands() -> str:
    """Every `mnist` command: its usage line, its help text, and each argument and option as `--help` shows it."""
    from mnist_cli.cli import app

    group = typer.main.get_command(app)
    root = group.context_class(group, info_name="mnist")
    out = [f"`mnist`: {group.help}", ""]
    for name in group.list_commands(root):
        command = group.get_command(root, name)
        if command is None or command.hidden:
            continue
        ctx = command.context_class(command, info_name=name, parent=root)
        usage = " ".join(command.collect_usage_pieces(ctx))
        out += [f"## `mnist {name}`", "", "```", f"mnist {name} {usage}", "```", "", _help_text(command.help or ""), ""]
        records = [p.get_help_record(ctx) for p in command.get_params(ctx) if p.name != "help"]
        out += ["| argument or option | meaning |", "|---|---|"]
        out += [f"| {_code(names)} | {_cell(meaning)} |" for names, meaning in filter(None, records)]
        out.append("")
    return "\n".join(out)


def _help_text(text: str) -> str:
    # Typer's \b markers (keep this paragraph's line breaks) mean nothing in Markdown.
    return re.sub(r"^\s*\x08\s*$", "", text, flags=re.MULTILINE).strip()


# --- configs ------------------------------------------------------------------------------------------------------


def _allowed(field: FieldInfo) -> str:
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return ", ".join(f"`{v}`" for v in get_args(annotation))
    bounds = []
    for m in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                bounds.append(f"{sign} {getattr(m, attr)}")
    kind = _type_name(annotation)
    return f"{kind}, {' and '.join(bounds)}" if bounds else kind


def _type_name(annotation: Any) -> str:
    if annotation in (int, float, bool, str):
        return annotation.__name__
    args = [a for a in get_args(annotation) if a is not type(None)]
    name = " or ".join(_type_name(a) for a in args) if get_origin(annotation) is not list else f"list of {_type_name(args[0])}"
    return f"{name} or null" if type(None) in get_args(annotation) else name


def _default(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if field.description:
                rows.append(f"| `{key}.*` | | | {_cell(field.description)} |")
            rows += _rows(annotation, key + ".")
            continue
        rows.append(f"| `{key}` | {_default(field.default)} | {_cell(_allowed(field))} | {_cell(field.description or '')} |")
    return rows


def configs() -> str:
    """Every config key (default, allowed values, meaning) from the schema, then the shipped configs."""
    from mnist_cli.config import Config

    out = ["| key | default | allowed | meaning |", "|---|---|---|---|", *_rows(Config), "", "## Shipped configs", ""]
    out += ["| config | what it is | reaches (seed 0) |", "|---|---|---|"]
    for path in sorted((REPO / "configs").glob("*.yaml")):
        header = " ".join(line[1:].strip() for line in path.read_text(encoding="utf-8").split("\n\n")[0].splitlines())
        header = header.replace(f"mnist train --config configs/{path.name}", "").strip()
        what = re.split(r"(?<=\.) ", header)[0]  # the first sentence
        reached = re.search(r"Reaches (?:here: )?(.*?)(?: in |, | \(|;|\.$)", header)
        out.append(f"| `configs/{path.name}` | {_cell(what)} | {_cell(reached.group(1)) if reached else ''} |")
    return "\n".join(out)
