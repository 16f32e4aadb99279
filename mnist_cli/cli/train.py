"""`mnist train`: plan the run, train with a progress display, render the result."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from mnist_cli.cli.app import INTERRUPTED, app, print_json, user_errors


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
    out: Annotated[
        str | None, typer.Option(help="Output folder: empty, or holding a run (default: checkpoints/<config name>).")
    ] = None,
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

    Ctrl-C (or SIGTERM, SIGHUP) finishes the current step, saves last.pt and prints the command that resumes; a second
    quits at once.
    """
    from mnist_cli.cli.app import printable
    from mnist_cli.cli.ui import TrainReporter, consoles, render_train_result
    from mnist_cli.errors import MnistError, TrainingInterrupted
    from mnist_cli.training.interrupt import graceful_stop
    from mnist_cli.training.plan import plan_run

    stdout, stderr = consoles()
    notice = "stopping after this step and saving last.pt (Ctrl-C again to quit at once)"
    with graceful_stop(notice) as stop, user_errors():
        if out is not None and not out.strip():
            raise MnistError("--out is empty; give the folder to train into")
        shortcuts = {"train.epochs": epochs, "seed": seed, "train.device": device}
        plan = plan_run(config, overrides, shortcuts=shortcuts, resume=resume, out=Path(out) if out is not None else None)
        if plan.resume_asked:
            said = f"resuming from {plan.resume_path}" if plan.resuming else f"no last.pt in {plan.run_dir}: starting a new run"
            stderr.print(printable(said), markup=False, soft_wrap=True)
        from mnist_cli.training.loop import train as run_training

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
                )
        except TrainingInterrupted as e:
            stderr.print(
                printable(str(e)) + f"\nresume with: mnist train --resume {printable(shlex.quote(e.path))}",
                markup=False,
                soft_wrap=True,
                highlight=False,
            )
            raise typer.Exit(stop.exit_code) from None
        except KeyboardInterrupt:
            stderr.print("interrupted at once; the files in the output folder are the last complete saves", markup=False)
            raise typer.Exit(stop.exit_code if stop() else INTERRUPTED) from None
    if done is None:
        result = {"dry_run": "passed", "out_dir": str(plan.run_dir), "device": plan.config.train.device}
        print_json(result) if as_json else stdout.print(f"preflight passed; would train into {plan.run_dir}", markup=False)
        return
    if as_json:
        print_json(done.as_dict())
    else:
        render_train_result(stdout, done.as_dict())
