"""The `mnist` command: parse, call one library function, render. torch is imported inside commands."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from mnist_cli import __version__
from mnist_cli.errors import ConfigError, MnistError


class MnistGroup(typer.core.TyperGroup):
    """Every command, but a closed stdout ends it quietly with exit 141 (typer itself would exit 1)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
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
    add_completion=False,
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


def _print_json(data: Any) -> None:
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


@app.command()
def train(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config; every key is optional (defaults: see README).")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one key, value parsed as YAML: --set model.width=512 (repeatable)."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="Shortcut for --set train.device=D (auto, cpu, cuda, cuda:N, mps).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Shortcut for --set train.epochs=N.")] = None,
    seed: Annotated[int | None, typer.Option(help="Shortcut for --set seed=N.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: checkpoints/<config name>).")] = None,
    resume: Annotated[
        str | None,
        typer.Option(help="Continue a run exactly: a last.pt, or 'auto' for the output folder's last.pt (a new run if none)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check config, device, output folder, disk, memory and data, then stop.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start a new run even if the output folder holds one (its files are replaced).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Train an MLP from a YAML config; writes best.pt, last.pt, config.yaml and metrics.jsonl.

    Ctrl-C finishes the current step, saves last.pt and prints the command that resumes; a second Ctrl-C quits at once.
    """
    from mnist_cli.checkpoint import checkpoints_root
    from mnist_cli.config import load_config
    from mnist_cli.errors import TrainingInterrupted
    from mnist_cli.interrupt import graceful_sigint
    from mnist_cli.ui import TrainReporter, consoles, render_train_result

    shortcuts = {"train.epochs": epochs, "seed": seed}
    sets = list(overrides or []) + [f"{k}={v}" for k, v in shortcuts.items() if v is not None]
    stdout, stderr = consoles()
    notice = "stopping after this step and saving last.pt (Ctrl-C again to quit at once)"
    with graceful_sigint(notice) as stop, user_errors():
        default_out = checkpoints_root() / (config.stem if config else "default")
        ckpt = None
        if resume is None:
            cfg = load_config(config, sets + ([f"train.device={device}"] if device is not None else []))
            out_dir = out or default_out
        else:
            from mnist_cli.resume import plan

            cfg, out_dir, ckpt, path = plan(resume, config, sets, out, default_out, device)
            said = f"resuming from {path}" if ckpt is not None else f"no last.pt in {out_dir}: starting a new run"
            stderr.print(said, markup=False, soft_wrap=True)
        from mnist_cli.train import train as run_training

        try:
            with TrainReporter(stderr, quiet=quiet) as reporter:
                done = run_training(
                    cfg, out_dir, reporter, resume_from=ckpt, should_stop=stop, dry_run=dry_run, overwrite=overwrite
                )
        except TrainingInterrupted as e:
            stderr.print(
                f"{e}\nresume with: mnist train --resume {shlex.quote(e.path)}", markup=False, soft_wrap=True, highlight=False
            )
            raise typer.Exit(INTERRUPTED) from None
        except KeyboardInterrupt:
            stderr.print("interrupted at once; the files in the output folder are the last complete saves", markup=False)
            raise typer.Exit(INTERRUPTED) from None
    if done is None:
        result = {"dry_run": "passed", "out_dir": str(out_dir), "device": cfg.train.device}
        _print_json(result) if as_json else stdout.print(f"preflight passed; would train into {out_dir}", markup=False)
        return
    result = done.as_dict()
    if as_json:
        _print_json(result)
    else:
        render_train_result(stdout, result)


@app.command("eval")
def evaluate_checkpoint(
    checkpoint: Annotated[Path, typer.Argument(help="A best.pt or last.pt written by `mnist train`.")],
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
        from mnist_cli.checkpoint import (
            config_from_checkpoint,
            load_checkpoint,
            model_from_checkpoint,
            normalization_from_checkpoint,
        )
        from mnist_cli.config import data_root
        from mnist_cli.data import load_split
        from mnist_cli.devices import resolve_device
        from mnist_cli.evaluate import evaluate

        ckpt = load_checkpoint(checkpoint)
        cfg = config_from_checkpoint(ckpt, checkpoint)
        torch_device = resolve_device(device)
        model = model_from_checkpoint(ckpt, checkpoint).to(torch_device)
        root = data_root_option or data_root(cfg.data)
        data = load_split(cfg.data.dataset, root, split, cfg.data.val_size, cfg.seed).to(torch_device)
        result = evaluate(model, data, normalization_from_checkpoint(ckpt), len(ckpt["classes"])).as_dict()
    if as_json:
        _print_json(result)
        return
    from mnist_cli.ui import consoles, render_evaluation

    stdout, _ = consoles()
    stdout.print(f"{checkpoint} on the {split} split", markup=False, soft_wrap=True)
    render_evaluation(stdout, result, ckpt["classes"], f"{split} split")


@app.command()
def predict(
    images: Annotated[
        list[str], typer.Argument(help="Image files, folders (every image inside), globs, or - for one image on stdin.")
    ],
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", "-m", help="A best.pt; default: the newest checkpoints/**/best.pt.")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many classes to list per image.")] = 3,
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0.0, max=1.0, help="Mark predictions below this probability uncertain.")
    ] = 0.0,
    invert: Annotated[
        str, typer.Option(help="auto: tell dark-on-light from the border; yes: the ink is darker; no: the ink is lighter.")
    ] = "auto",
    show: Annotated[bool, typer.Option("--show", help="Draw each 28x28 input the network sees beside its prediction.")] = False,
    save_inputs_to: Annotated[
        Path | None, typer.Option("--save-inputs", help="Write each 28x28 input the network sees as a PNG in this folder.")
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
    """
    from mnist_cli.ui import consoles

    stdout, stderr = consoles()
    with user_errors():
        from mnist_cli.preprocess import INVERT_CHOICES

        if invert not in INVERT_CHOICES:
            raise MnistError(f"--invert must be auto, yes or no, not {invert!r}")
        from mnist_cli.checkpoint import load_checkpoint, model_from_checkpoint, newest_checkpoint, normalization_from_checkpoint
        from mnist_cli.images import STDIN, expand_arguments
        from mnist_cli.predict import Failure, predict_sources, save_inputs

        sources = expand_arguments(images)
        if sources.count(STDIN) > 1:
            raise MnistError("- (stdin) can be given only once")
        if checkpoint is None:
            checkpoint = newest_checkpoint()
            stderr.print(f"using checkpoint {checkpoint}", markup=False, soft_wrap=True)
        ckpt = load_checkpoint(checkpoint)
        model = model_from_checkpoint(ckpt, checkpoint)
        results = predict_sources(
            sources,
            model,
            normalization_from_checkpoint(ckpt),
            ckpt["classes"],
            top_k=top_k,
            min_confidence=min_confidence,
            invert=invert,
            stdin=sys.stdin.buffer if STDIN in sources else None,
        )
    errors = [f"error: {r.path}: {r.error}" for r in results if isinstance(r, Failure)]
    if save_inputs_to is not None:
        from mnist_cli.errors import SaveError

        try:
            save_inputs(results, save_inputs_to)
        except SaveError as e:  # the predictions are made: print them, then say what was not saved
            errors.append(f"error: {e}")
    for error in errors:
        stderr.print(error, markup=False, soft_wrap=True)
    if as_json:
        _print_json([r.as_dict() for r in results])
    else:
        from mnist_cli.ui import render_predictions

        render_predictions(stdout, [r for r in results if not isinstance(r, Failure)], show=show)
    if errors:
        raise typer.Exit(USER_ERROR)


def main() -> None:
    """Entry point of the `mnist` console script."""
    try:
        try:
            app()
        finally:
            sys.stdout.flush()  # here, not at exit, so a reader that went away is caught below
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(BROKEN_PIPE)
