"""`mnist export`: a checkpoint as an ONNX or TorchScript file that takes raw images and returns probabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from mnist_cli.cli.app import print_json, printable, user_errors
from mnist_cli.cli.completion import complete_checkpoint


def export(
    checkpoint: Annotated[
        Path,
        typer.Argument(help="A best.pt or last.pt written by `mnist train`.", autocompletion=complete_checkpoint, readable=False),
    ],
    fmt: Annotated[
        Literal["onnx", "torchscript"], typer.Option("--format", "-f", help="onnx (needs the export extra) or torchscript.")
    ] = "onnx",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The file, or a folder for RUN-CHECKPOINT.onnx (default: here, tiny-best.onnx)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {path, format, input, classes, model} as JSON.")] = False,
) -> None:
    """Write the model as one file other programs run: raw inputs in, class probabilities out.

    The normalisation and the softmax are inside: an MNIST model takes float32 (batch, 28, 28) of 0-255 pixels,
    light ink on black, as `mnist predict --save-inputs` writes them. The classes and the input spec are in the
    file's metadata (ONNX metadata_props; TorchScript extra files `classes` and `input`).
    """
    with user_errors():
        from mnist_cli.export import export_checkpoint

        exported = export_checkpoint(checkpoint, fmt, output)
    if as_json:
        print_json(exported.as_dict())
        return
    from mnist_cli.cli.ui import consoles, say

    stdout, _ = consoles()
    spec = exported.input
    line = (
        f"wrote {exported.path} ({exported.format}, {exported.model}): float32 (batch, {', '.join(map(str, spec.shape))}) "
        f"of {spec.low:g}-{spec.high:g} in, probabilities of {', '.join(exported.classes)} out"
    )
    say(stdout, printable(line))
