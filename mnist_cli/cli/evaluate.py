"""`mnist eval`: a checkpoint's accuracy, loss, per-class accuracy and confusion matrix on the test or val split."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Column, Table
from rich.text import Text

from mnist_cli.cli.app import print_json, printable, user_errors
from mnist_cli.cli.completion import DEVICE_METAVAR, complete_checkpoint, complete_device

if TYPE_CHECKING:
    from mnist_cli.evaluate import Evaluation, TableRow


def evaluate_checkpoint(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A best.pt or last.pt written by `mnist train`.",
            autocompletion=complete_checkpoint,
            readable=False,  # we say why a file cannot be read, not click
        ),
    ],
    split: Annotated[Literal["test", "val"], typer.Option(help="test, or val (the exact images held out in training).")] = "test",
    device: Annotated[
        str, typer.Option(metavar=DEVICE_METAVAR, help="The device to evaluate on.", autocompletion=complete_device)
    ] = "auto",
    data_root_option: Annotated[
        Path | None,
        typer.Option(
            "--data-root",
            help="Folder holding MNIST/raw/ (default: the checkpoint's if on this machine, else $MNIST_DATA_DIR, else ./data).",
        ),
    ] = None,
    data_folder: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A folder of images, one subfolder per class named as the model's: evaluate on all of it instead of a split.",
        ),
    ] = None,
    other_dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", help="Evaluate on another dataset's test split with the same classes (mnist for a fine-tuned model)."
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print accuracy, loss, n, per_class and confusion (and truth_table) as JSON."),
    ] = False,
) -> None:
    """Accuracy, loss, per-class accuracy and the confusion matrix of a checkpoint.

    For a truth-table checkpoint (xor, and, or), also each of the four points with the network's output.
    """
    with user_errors():
        from mnist_cli.config import recorded_data_root
        from mnist_cli.data.datasets import load_split
        from mnist_cli.data.folder import evaluation_folder, other_test_split
        from mnist_cli.devices import resolve_device
        from mnist_cli.evaluate import predict_split, summarize, truth_table
        from mnist_cli.inference.trained import load_trained

        trained = load_trained(checkpoint, resolve_device(device))
        cfg = trained.config
        d, where = cfg.data, f"{split} split"
        if data_folder is not None:  # issue 21: a folder of one's own images, prepared as predict prepares them
            data, where = evaluation_folder(data_folder, trained.classes, trained.dataset.input_shape), str(data_folder)
        elif other_dataset is not None:  # issue 21: what a fine-tuned model still knows of the dataset it came from
            data = other_test_split(other_dataset, trained.classes, trained.dataset.input_shape, data_root_option)
            where = f"{other_dataset} test split"
        else:
            root = data_root_option or recorded_data_root(d)
            data = load_split(d.dataset, root, split, d.val_size, cfg.seed, d.test_root, d.skip_bad_files)
        data = data.to(trained.device)
        per_example = predict_split(trained.model, data, trained.normalization)
        result = summarize(per_example, len(trained.classes))
        table = truth_table(data, per_example) if trained.dataset.kind == "table" else None
    if as_json:
        print_json({**result.as_dict(), **({"truth_table": [row.as_dict() for row in table]} if table else {})})
        return
    from mnist_cli.cli.ui import consoles, say

    stdout, _ = consoles()
    say(stdout, printable(f"{checkpoint} on {'the ' if data_folder is None else ''}{where}"))
    if table is not None:
        stdout.print(truth_table_view(table, cfg.data.dataset))
    for view in evaluation_views(result, trained.classes, where):
        stdout.print(view)


def evaluation_views(result: Evaluation, classes: list[str], title: str) -> list[Table]:
    """Accuracy and loss, per-class accuracy, and the confusion matrix as tables; class names as Text, never markup."""
    names = [Text(printable(name)) for name in classes]
    summary = Table(*(Column(name, justify="right") for name in ("images", "accuracy", "loss")), title=Text(title))
    summary.add_row(f"{result.n:,}", f"{result.accuracy:.2%}", f"{result.loss:.4f}")
    per_class = Table("class", Column("images", justify="right"), Column("accuracy", justify="right"), title="per-class accuracy")
    for name, row, acc in zip(names, result.confusion, result.per_class, strict=True):
        per_class.add_row(name, f"{sum(row):,}", "n/a" if acc is None else f"{acc:.2%}")
    confusion = Table(Column("", style="bold"), *(Column(n, justify="right") for n in names))
    confusion.title = "confusion matrix (rows: true, columns: predicted)"
    for i, (name, row) in enumerate(zip(names, result.confusion, strict=True)):
        confusion.add_row(name, *(Text(str(v), style="bold") if i == j else (str(v) if v else "·") for j, v in enumerate(row)))
    return [summary, per_class, confusion]


def truth_table_view(rows: list[TableRow], name: str) -> Table:
    """The four points of a truth table: inputs, the target, the network's P(1) and its answer; a tie is said so."""
    centred = [Column(name, justify="center") for name in ("a", "b", "target")]
    table = Table(
        *centred, Column("P(1)", justify="right"), Column("output", justify="center"), "", title=Text(f"{name} truth table")
    )
    for row in rows:
        tie = round(row.probabilities[1], 4) == 0.5  # shown as 0.5000: which class wins is rounding noise
        mark = Text("ok", style="green") if row.prediction == row.target else Text("wrong", style="bold red")
        output = f"{row.prediction} (tie)" if tie else str(row.prediction)
        table.add_row(*(str(v) for v in row.inputs), str(row.target), f"{row.probabilities[1]:.4f}", output, mark)
        if tie:
            table.caption = "(tie): P(1) = P(0), the output is a coin toss"
    return table
