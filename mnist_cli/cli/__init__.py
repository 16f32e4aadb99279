"""The `mnist` command line: the only layer that imports typer or rich, or writes to the terminal."""

from mnist_cli.cli import evaluate, predict, sweep, train  # noqa: F401 - importing a command module registers its command
from mnist_cli.cli.app import app, main

__all__ = ["app", "main"]
