"""The `mnist` command line: the only layer that imports typer or rich, or writes to the terminal."""

# Importing a command module registers its command.
from mnist_cli.cli import compare, evaluate, export, predict, report, serve, sweep, train  # noqa: F401
from mnist_cli.cli.app import app, main

__all__ = ["app", "main"]
