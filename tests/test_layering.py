"""The architecture as a test: only the CLI layer talks to the terminal, and the core stays small and readable."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mnist_cli"
CLI_LAYER = PACKAGE / "cli"
TERMINAL_LIBRARIES = ("typer", "rich", "click")
MAX_FUNCTION_LINES = 80  # outside the CLI layer; a longer function is asking to be split into phases
# The entry point `python -m mnist_cli` only hands over to the CLI.
ENTRY_POINTS = {PACKAGE / "__main__.py"}


def core_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if CLI_LAYER not in p.parents and p not in ENTRY_POINTS)


def terminal_uses(source: str) -> list[str]:
    """What in `source` reaches the terminal: imports of typer/rich/click, calls of print, writes to sys.stdout/stderr."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in TERMINAL_LIBRARIES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in TERMINAL_LIBRARIES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            found.append(f"print() at line {node.lineno}")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ("stdout", "stderr")
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            found.append(f"sys.{node.attr} at line {node.lineno}")
    return found


def long_functions(source: str) -> list[str]:
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("print('hello')", True),
        ("import rich", True),
        ("from rich.console import Console", True),
        ("import typer", True),
        ("from click import echo", True),
        ("import sys\nsys.stdout.write('x')", True),
        ("def f():\n    import sys\n    sys.stderr.write('x')", True),
        ("import torch\nfrom mnist_cli.config import Config\nx = printer(1)\n", False),
    ],
)
def test_the_check_catches_a_core_module_that_prints_and_leaves_plain_code_alone(source, caught):
    assert bool(terminal_uses(source)) == caught


def test_the_checks_catch_a_long_function_and_a_redefined_one():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}\n") == [f"f ({MAX_FUNCTION_LINES + 1} lines)"]
    assert redefined_functions("def f():\n    return g()\n\n\ndef f():\n    pass\n") == ["f"]


def redefined_functions(source: str) -> list[str]:
    """Top-level functions and classes defined twice in one module: the later silently replaces the earlier."""
    names = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    return sorted({name for name in names if names.count(name) > 1})


@pytest.mark.parametrize("module", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_keeps_the_architecture(module):
    source = module.read_text()
    # A merge once left two `_load_dataset`s in data/datasets.py; the second made the small datasets unknown.
    assert redefined_functions(source) == []
    if module in core_modules():
        assert terminal_uses(source) == []
        assert long_functions(source) == []
