"""`mnist train`: plan the run, train with a progress display, render the result."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from mnist_cli.cli.app import INTERRUPTED, print_json, printable, user_errors
from mnist_cli.cli.completion import DEVICE_METAVAR, complete_checkpoint, complete_config, complete_device
from mnist_cli.errors import MnistError


def train(
    config_argument: Annotated[
        Path | None,
        typer.Argument(
            metavar="CONFIG", help="YAML config, the same as --config.", autocompletion=complete_config, show_default=False
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="YAML config; every key is optional (defaults: see README).", autocompletion=complete_config
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="<key.path=value>",
            help="Override one key, value parsed as YAML: --set model.width=512 (repeatable).",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Shortcut for --set train.epochs=N.")] = None,
    lr: Annotated[float | None, typer.Option(help="Shortcut for --set train.lr=X.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Shortcut for --set train.batch_size=N.")] = None,
    depth: Annotated[int | None, typer.Option(help="Shortcut for --set model.depth=N.")] = None,
    width: Annotated[int | None, typer.Option(help="Shortcut for --set model.width=N.")] = None,
    seed: Annotated[int | None, typer.Option(help="Shortcut for --set seed=N.")] = None,
    device: Annotated[
        str | None,
        typer.Option(metavar=DEVICE_METAVAR, help="Shortcut for --set train.device=D.", autocompletion=complete_device),
    ] = None,
    data_root: Annotated[
        Path | None, typer.Option(help="Shortcut for --set data.root=DIR: the folder holding MNIST/raw/.")
    ] = None,
    init_from: Annotated[
        Path | None,
        typer.Option(help="Shortcut for --set train.init_from=CHECKPOINT: fine-tune, starting from its weights."),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            help="Output folder, empty or holding a run (default: checkpoints/<config name>/<the overrides that change it>/).",
        ),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            metavar="<last.pt|auto>",
            help="Continue a run exactly: a last.pt, or 'auto' for the output folder's last.pt (a new run if none).",
            autocompletion=complete_checkpoint,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check config, device, output folder, disk, memory and data; print the folder, device and size, and stop.",
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Start a new run even if the output folder holds one: the old run's files are removed before the first save.",
        ),
    ] = False,
    mlflow: Annotated[
        bool, typer.Option("--mlflow", help="Also log to MLflow (MLFLOW_TRACKING_URI, or its default store); the mlflow extra.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Train an MLP from a YAML config; writes best.pt, last.pt, config.yaml, events.jsonl and result.json.

    Without --out, the run goes to checkpoints/<config name>/, plus a folder named by the overrides that change the
    config (checkpoints/default/model.width=256,train.epochs=3/), so different experiments never share a folder.
    Ctrl-C (or SIGTERM, SIGHUP) finishes the current step, saves last.pt and prints the command that resumes; a second
    quits at once.
    """
    from mnist_cli.cli.ui import TrainReporter, consoles, render_train_result, say
    from mnist_cli.errors import TrainingInterrupted
    from mnist_cli.tracking import mlflow_target
    from mnist_cli.training.events import DryRun
    from mnist_cli.training.interrupt import graceful_stop
    from mnist_cli.training.loop import train as run_training
    from mnist_cli.training.plan import plan_run

    stdout, stderr = consoles()
    notice = "stopping after this step and saving last.pt (Ctrl-C again to quit at once)"
    with graceful_stop(notice) as stop, user_errors():
        if out is not None and not out.strip():
            raise MnistError("--out is empty; give the folder to train into")
        if config_argument is not None and config is not None and config_argument != config:
            raise MnistError(f"two configs given ({config_argument} and --config {config}); give one")
        shortcuts = {
            "train.epochs": epochs,
            "train.lr": lr,
            "train.batch_size": batch_size,
            "model.depth": depth,
            "model.width": width,
            "seed": seed,
            "data.root": str(data_root) if data_root is not None else None,
            "train.device": device,
            "train.init_from": str(init_from) if init_from is not None else None,
        }
        out_dir = Path(out) if out is not None else None
        plan = plan_run(config or config_argument, overrides, shortcuts=shortcuts, resume=resume, out=out_dir)
        tracking = mlflow_target(mlflow)
        if plan.resume_asked:
            said = f"resuming from {plan.resume_path}" if plan.resuming else f"no last.pt in {plan.run_dir}: starting a new run"
            say(stderr, printable(said))
        try:
            with TrainReporter(stderr, quiet=quiet) as reporter:
                done = run_training(
                    plan.config,
                    plan.run_dir,
                    reporter,
                    resume_from=plan.resume_from,
                    should_stop=stop,
                    dry_run=dry_run,
                    overwrite=overwrite,
                    mlflow=tracking,
                )
        except TrainingInterrupted as e:
            say(stderr, printable(str(e)) + f"\nresume with: mnist train --resume {printable(shlex.quote(e.path))}")
            raise typer.Exit(stop.exit_code) from None
        except KeyboardInterrupt:
            stderr.print("interrupted at once; the files in the output folder are the last complete saves", markup=False)
            raise typer.Exit(stop.exit_code if stop() else INTERRUPTED) from None
    if as_json:
        print_json(done.as_dict())
    elif isinstance(done, DryRun):
        say(stdout, f"preflight passed; would train {done.parameters:,} parameters on {done.device} into {done.out_dir}")
    else:
        render_train_result(stdout, done)
