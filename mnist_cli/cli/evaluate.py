"""`mnist eval`: a checkpoint's accuracy, loss, per-class accuracy and confusion matrix on the test or val split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mnist_cli.cli.app import app, print_json, printable, user_errors
from mnist_cli.errors import MnistError


@app.command("eval")
def evaluate_checkpoint(
    checkpoint: Annotated[
        Path, typer.Argument(help="A best.pt or last.pt written by `mnist train`.", readable=False)  # we say why, not click
    ],
    split: Annotated[str, typer.Option(help="test, or val (the exact images held out in training).")] = "test",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    data_root_option: Annotated[
        Path | None,
        typer.Option(
            "--data-root", help="Folder holding MNIST/raw/ (default: the checkpoint's, else $MNIST_DATA_DIR, else ./data)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print accuracy, loss, n, per_class and confusion as JSON.")] = False,
) -> None:
    """Accuracy, loss, per-class accuracy and the confusion matrix of a checkpoint."""
    with user_errors():
        if split not in ("test", "val"):
            raise MnistError(f"--split must be test or val, not {split!r}")
        from mnist_cli.config import data_root
        from mnist_cli.data.datasets import load_split
        from mnist_cli.devices import resolve_device
        from mnist_cli.evaluate import evaluate
        from mnist_cli.inference.trained import load_trained

        trained = load_trained(checkpoint, resolve_device(device))
        cfg = trained.config
        root = data_root_option or data_root(cfg.data)
        data = load_split(cfg.data.dataset, root, split, cfg.data.val_size, cfg.seed).to(trained.device)
        result = evaluate(trained.model, data, trained.normalization, len(trained.classes)).as_dict()
    if as_json:
        print_json(result)
        return
    from mnist_cli.cli.ui import consoles, render_evaluation

    stdout, _ = consoles()
    stdout.print(printable(f"{checkpoint} on the {split} split"), markup=False, soft_wrap=True)
    render_evaluation(stdout, result, trained.classes, f"{split} split")
