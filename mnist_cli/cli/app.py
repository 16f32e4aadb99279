"""The `mnist` app: its commands' shared parts (exit codes, user errors, JSON output) and the entry point."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from mnist_cli import __version__
from mnist_cli.errors import ConfigError, MnistError


def _shown_plainly(params: list[Any]) -> list[Any]:
    # typer 0.29 would show `--dry-run <bool>`, as if a flag took a value, and name arguments `{checkpoint}`.
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""
        elif isinstance(param, TyperArgument) and param.metavar is None:
            param.metavar = (param.name or "").upper()
    return params


class MnistCommand(TyperCommand):
    """A command whose help shows flags plainly and whose usage writes a required argument bare (`eval CHECKPOINT`)."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return _shown_plainly(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        return [piece.replace("{", "").replace("}", "") for piece in super().collect_usage_pieces(ctx)]


class MnistGroup(typer.core.TyperGroup):
    """Every command, with the group's own flags shown plainly too."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return _shown_plainly(super().get_params(ctx))


def silence(file: Any) -> None:
    """Point `file`'s descriptor at /dev/null, so later writes and the flush at exit meet no closed pipe (as Python's
    `signal` docs do); a captured stream (CliRunner) has no descriptor to replace."""
    try:
        fd = file.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


app = typer.Typer(
    cls=MnistGroup,
    name="mnist",
    help="Train, evaluate and use MNIST digit classifiers described in YAML.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion; completers in completion.py
    pretty_exceptions_show_locals=False,
)

USER_ERROR = 2
INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C'd program
# 128 + SIGPIPE: what shells report for `grep` or `cat` when the reader of their output goes away (`| head -1`);
# `set -o pipefail` scripts see mnist as they see those, and a cut-short output is never mistaken for a full one.
BROKEN_PIPE = 141


CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # every control character but the tab


def printable(text: str) -> str:
    """`text` with control characters shown escaped (`\\x1b`): a file or class name must not drive the terminal."""
    return CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user's mistake into one line on stderr and exit code 2; bugs keep their traceback."""
    try:
        yield
    except ConfigError as e:
        source, problems = printable(e.source), [printable(p) for p in e.problems]
        lines = problems if len(problems) == 1 else [f"{len(problems)} problems", *(f"  - {p}" for p in problems)]
        typer.echo(f"error: {source}: " + "\n".join(lines), err=True)
        raise typer.Exit(USER_ERROR) from None
    except MnistError as e:
        typer.echo(f"error: {printable(str(e))}", err=True)
        raise typer.Exit(USER_ERROR) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mnist-cli {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Train, evaluate and use MNIST digit classifiers described in YAML."""


def main() -> None:
    """Entry point of the `mnist` console script; a closed stdout (`mnist eval X | head -1`) ends it with exit 141.

    typer and rich's console would exit 1 when the reader of the output goes away.
    """
    try:
        try:
            app()
        finally:
            if sys.stdout is not None:  # None when started with stdout closed (`>&-`)
                sys.stdout.flush()  # here, not at exit, so a reader that went away is caught below
    except (BrokenPipeError, SystemExit) as e:
        # A BrokenPipeError, or the SystemExit(1) that typer and rich's console raise while handling one.
        if not (isinstance(e, BrokenPipeError) or isinstance(e.__context__, BrokenPipeError)):
            raise
        silence(sys.stdout)
        sys.exit(BROKEN_PIPE)
