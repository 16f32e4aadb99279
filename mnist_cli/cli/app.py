"""The `mnist` app: its commands' shared parts (exit codes, user errors, JSON output) and the entry point."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperOption

from mnist_cli import __version__
from mnist_cli.errors import ConfigError, MnistError


class _Flag(TyperOption):
    """A flag takes no value, so its help shows none (typer 0.29 labels every option with a type: `--dry-run <bool>`)."""

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        return None


class _Named(TyperArgument):
    """An argument shown by its name, CHECKPOINT or [CONFIG] or IMAGES... (typer 0.29 prints `{checkpoint}`)."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    def _label(self) -> str:
        return self.display_name_raw

    def _usage_display_name(self) -> str:
        name = self._label() if self.required else f"[{self._label()}]"
        return name + ("..." if self.nargs != 1 else "")

    def _rich_display_name(self) -> str:
        return self._label() + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        return None


def _honest_help(params: list[Any]) -> list[Any]:
    """Flags shown as flags and arguments by name, in `--help` and usage lines; every command gets this, new ones too.

    typer 0.29 (which carries its own copy of click, so the installed click's version plays no part) renders a type
    label beside every option and wraps arguments in braces; its help then says `--dry-run <bool>`, which reads as if
    the flag took a value (`--dry-run true` fails with "unexpected extra argument"). Swapping in the two small
    subclasses above changes only how a parameter is shown, never how it is parsed.
    """
    for param in params:
        if type(param) is TyperOption and param.is_flag:
            param.__class__ = _Flag
        elif type(param) is TyperArgument:
            param.__class__ = _Named
    return params


def _reader_went_away(e: BaseException) -> bool:
    """A closed stdout: a BrokenPipeError, or the SystemExit(1) rich's console raises while handling one."""
    return isinstance(e, BrokenPipeError) or (isinstance(e, SystemExit) and isinstance(e.__context__, BrokenPipeError))


class MnistGroup(typer.core.TyperGroup):
    """Every command, but help that shows flags as flags, and a closed stdout ends it quietly with exit 141.

    typer itself, and rich's console, would exit 1 when the reader of the output goes away (`mnist eval X | head -1`).
    """

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return _honest_help(super().get_params(ctx))

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _honest_help(command.get_params(ctx))
        return command

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (BrokenPipeError, SystemExit) as e:
            if not _reader_went_away(e):
                raise
            _silence_stdout()
            raise typer.Exit(BROKEN_PIPE) from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit meets no closed pipe (the recipe in Python's `signal` docs)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stdout (CliRunner) has no descriptor to replace
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


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user's mistake into one line on stderr and exit code 2; bugs keep their traceback."""
    try:
        yield
    except ConfigError as e:
        if len(e.problems) == 1:
            typer.echo(f"error: {e.source}: {e.problems[0]}", err=True)
        else:
            typer.echo("\n".join([f"error: {e.source}: {len(e.problems)} problems", *(f"  - {p}" for p in e.problems)]), err=True)
        raise typer.Exit(USER_ERROR) from None
    except MnistError as e:
        typer.echo(f"error: {e}", err=True)
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
    """Entry point of the `mnist` console script."""
    try:
        try:
            app()
        finally:
            sys.stdout.flush()  # here, not at exit, so a reader that went away is caught below
    except (BrokenPipeError, SystemExit) as e:
        # The group's own help and --version are written before any command runs: their closed pipe ends here.
        if not _reader_went_away(e):
            raise
        _silence_stdout()
        sys.exit(BROKEN_PIPE)
