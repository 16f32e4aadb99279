"""The `mnist` command line: the only layer that imports typer or rich, or writes to the terminal.

Every command is registered here, in the order `mnist --help` lists them.
"""

from mnist_cli.cli import compare, evaluate, export, predict, report, serve, sweep, train
from mnist_cli.cli.app import MnistCommand, app, main

for name, command in (
    ("compare", compare.compare),
    ("eval", evaluate.evaluate_checkpoint),
    ("export", export.export),
    ("predict", predict.predict),
    ("report", report.report),
    ("serve", serve.serve),
    ("sweep", sweep.sweep),
    ("train", train.train),
):
    app.command(name, cls=MnistCommand)(command)

__all__ = ["app", "main"]
