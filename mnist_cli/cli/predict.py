"""`mnist predict`: the digit in people's own images, prepared the way MNIST was made."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from mnist_cli.cli.app import USER_ERROR, print_json, printable, user_errors
from mnist_cli.cli.completion import DEVICE_METAVAR, complete_checkpoint, complete_device
from mnist_cli.errors import MnistError, SaveError

# predict's and serve's -m: without it, inference/discover.py chooses.
ChosenCheckpoint = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        "-m",
        help="A best.pt; default: the best image model under checkpoints/ (named on stderr, with why).",
        autocompletion=complete_checkpoint,
    ),
]


def predict(
    images: Annotated[
        list[str], typer.Argument(help="Image files, folders (every image inside), globs, or - for one image on stdin.")
    ],
    checkpoint: ChosenCheckpoint = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many classes to list per image.")] = 3,
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0.0, max=1.0, help="Mark predictions below this probability uncertain.")
    ] = 0.0,
    invert: Annotated[
        Literal["auto", "yes", "no"],
        typer.Option(help="auto: tell dark-on-light from the border; yes: the ink is darker; no: the ink is lighter."),
    ] = "auto",
    device: Annotated[
        str,
        typer.Option(
            metavar=DEVICE_METAVAR,
            help="The device to run the network on (a few images are fastest on the cpu).",
            autocompletion=complete_device,
        ),
    ] = "cpu",
    show: Annotated[
        bool, typer.Option("--show", help="Draw each input the network sees (28x28; 8x8 for digits) beside it.")
    ] = False,
    save_inputs_to: Annotated[
        Path | None,
        typer.Option("--save-inputs", help="Write each input the network sees (28x28; 8x8 for digits) as a PNG here."),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print a list of {path, prediction, label, probability, top_k, uncertain}, or {path, error} per failed file.",
        ),
    ] = False,
) -> None:
    """The digit in each image, with its probability and the top-k classes.

    Images are prepared the way MNIST was made: transparent pixels are background, dark-on-light is
    inverted, the paper is removed, and the ink is fitted into 20x20 and centred by mass in 28x28.
    For a checkpoint trained on scikit-learn's digits, the ink is fitted into a 32x32 bitmap and the inked
    pixels of each 4x4 block counted: 8x8 inputs with 17 grey levels, as that dataset was made.
    """
    from mnist_cli.cli.ui import consoles, render_predictions, say

    stdout, stderr = consoles()
    with user_errors():
        from mnist_cli.devices import resolve_device
        from mnist_cli.inference.discover import image_model
        from mnist_cli.inference.image_files import STDIN, expand_arguments
        from mnist_cli.inference.predict import Failure, predict_sources, save_inputs

        sources = expand_arguments(images)
        if sources.count(STDIN) > 1:
            raise MnistError("- (stdin) can be given only once")
        trained, chosen = image_model(checkpoint, "predict", resolve_device(device))
        if chosen:
            say(stderr, printable(chosen))
        stdin = sys.stdin.buffer if STDIN in sources else None
        results = predict_sources(sources, trained, top_k=top_k, min_confidence=min_confidence, invert=invert, stdin=stdin)
    errors = [f"error: {r.path}: {r.error}" for r in results if isinstance(r, Failure)]
    if save_inputs_to is not None:
        try:
            save_inputs(results, save_inputs_to)
        except SaveError as e:  # the predictions are made: print them, then say what was not saved
            errors.append(f"error: {e}")
    for error in errors:
        say(stderr, printable(error))  # a file name must not drive the terminal
    if as_json:
        print_json([r.as_dict() for r in results])
    else:
        render_predictions(stdout, [r for r in results if not isinstance(r, Failure)], show=show)
    if errors:
        raise typer.Exit(USER_ERROR)
