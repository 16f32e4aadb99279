"""`mnist sweep`: plan and validate a grid, train it with one progress display, render cells, runs and failures."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from mnist_cli.cli.app import INTERRUPTED, USER_ERROR, print_json, user_errors


def sweep(
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            metavar="<key.path=v1,v2,...>",
            help="KEY=V1,V2,... to sweep (repeatable), values parsed as YAML; "
            "quote lists: --grid 'model.width=[256,128],[128,256]'.",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Base YAML config (default: the built-in defaults).")
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per cell: seed, seed+1, ... of the base config.")] = 1,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="<key.path=value>", help="Override one base key for every run: --set train.lr=0.003 (repeatable)."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Shortcut for --set train.epochs=N.")] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1, help="Runs in parallel (default: one per core), each with cores/jobs threads; 1 trains in this process."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Sweep folder (default: checkpoints/sweeps/<config>-<keys>).")] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="local (worker processes here; the default) or ray (Ray tasks; needs the ray extra).", show_default=False
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to join (implies --backend ray): auto, HOST:PORT or ray://HOST:10001 "
            "(default: with --backend ray, start Ray on this machine)."
        ),
    ] = None,
    mlflow: Annotated[
        bool, typer.Option("--mlflow", help="Log to MLflow: a parent run with one nested run per training (the mlflow extra).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print runs and cells as one JSON object on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Train every combination of the --grid values x --seeds, each into its own run folder, and summarise per cell.

    Writes OUT/sweep.yaml (the plan, first), OUT/<cell>/seed=S/ (ordinary run folders), OUT/runs.csv, OUT/cells.csv,
    OUT/heatmap.png and OUT/accuracy-vs-parameters.png. The same command again skips finished runs and resumes
    interrupted ones exactly. Exit 0 when every run finished, 2 when any failed (listed at the end), 130 on Ctrl-C.
    """
    from mnist_cli.cli.sweep_ui import SweepReporter, render_cells, render_failures
    from mnist_cli.cli.ui import consoles, say
    from mnist_cli.training.interrupt import graceful_stop

    stdout, stderr = consoles()
    sets = [*(overrides or []), *([f"train.epochs={epochs}"] if epochs is not None else [])]
    with (
        graceful_stop("stopping the runs after their current step, keeping what finished (Ctrl-C again to quit at once)") as stop,
        user_errors(),
    ):
        from mnist_cli.sweep.grid import plan_sweep
        from mnist_cli.sweep.runner import run_sweep
        from mnist_cli.tracking import mlflow_target

        plan = plan_sweep(config, sets, grid or [], seeds, out)
        tracking = mlflow_target(mlflow)
        again = continue_command(plan.out_dir)
        try:
            with SweepReporter(stderr, quiet=quiet) as reporter:
                result = run_sweep(
                    plan, backend=backend, jobs=jobs, address=address, on_event=reporter, should_stop=stop, mlflow=tracking
                )
        except KeyboardInterrupt:
            say(stderr, f"quit at once; finished runs are kept. Continue with:\n  {again}")
            raise typer.Exit(INTERRUPTED) from None
    if result.interrupted or stop():
        left = sum(r.status != "done" for r in result.runs)
        kept = f"{len(result.runs) - left} of {len(result.runs)} runs finished (kept in {result.out_dir})"
        say(stderr, f"stopped: {kept}. Continue with:\n  {again}")
        raise typer.Exit(stop.exit_code if stop() else INTERRUPTED)  # 143 for SIGTERM, 129 for SIGHUP
    if as_json:
        print_json(result.as_dict())
    else:
        render_cells(stdout, result)
    if result.failed:
        render_failures(stderr, result)
        raise typer.Exit(USER_ERROR)


def continue_command(out: Path) -> str:
    """The command line that continues this sweep into the same folder: this one, with --out made explicit."""
    args = sys.argv[1:]
    return shlex.join(["mnist", *args, *([] if "--out" in args else ["--out", str(out)])])
