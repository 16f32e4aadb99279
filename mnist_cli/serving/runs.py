"""The Train page's runs: one at a time, each in a spawned child process that trains as `mnist train` does.

Not a thread: a pure-Python XOR epoch would hold the GIL against `/api/predict`, and `train` sets the process's torch
threads and RNG states. The child only says when it started and ended and, every SNAPSHOT_S, copies the first layer's
weights (a truth table's whole model); a server thread reads the records from events.jsonl as it grows, draws the
pictures and works out the verdicts, so the training process does no more work than `mnist train`'s.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import shlex
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from mnist_cli import record
from mnist_cli.config import Config, to_yaml, validate
from mnist_cli.data.catalog import dataset_info
from mnist_cli.errors import ConfigError, MnistError, first_line
from mnist_cli.model import parameter_count
from mnist_cli.naming import value_text
from mnist_cli.record import EpochMetrics, HealthRecord, StepRecord

SNAPSHOT_S = 0.4  # seconds between weight copies a run sends: the page redraws at least twice a second
POLL_S = 0.4  # the server reads a run's new records, and a stream sends them, this often
TILES = 32  # first-layer units drawn as tiles
GRID = 41  # points per side of the 2-input pictures
KINDS = (EpochMetrics, HealthRecord, StepRecord)  # what the verdicts read
MAX_PARAMS, MAX_EPOCHS = 5_000_000, 50  # defaults of `mnist serve --max-params/--max-epochs`
CONFIGS = Path("configs")  # shipped configs, found as `mnist train`'s completion finds them: in the working folder


@dataclass
class LiveRun:
    """A run this server started: its child process and what it has sent so far."""

    id: str
    run_dir: Path
    command: str
    config: Config
    stop: Any  # multiprocessing.Event
    process: Any = None  # multiprocessing.Process
    status: str = "running"  # running, finished, stopped, failed
    message: str = ""
    events: list[tuple[str, Any]] = field(default_factory=list)  # (SSE event name, JSON-able data), in order
    records: list[record.Record] = field(default_factory=list)  # the run's events.jsonl so far, for the verdicts
    snapshot: tuple[int, Any] = (0, None)  # (serial number, the newest pictures): kept, not accumulated

    @property
    def done(self) -> bool:
        return self.status != "running"


@dataclass
class Runner:
    """One training at a time, for the whole server."""

    root: Path
    max_params: int = MAX_PARAMS
    max_epochs: int = MAX_EPOCHS
    runs: dict[str, LiveRun] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def running(self) -> LiveRun | None:
        return next((r for r in self.runs.values() if not r.done), None)

    def start(self, settings: dict[str, Any], base: str | None, overwrite: bool) -> LiveRun:
        from mnist_cli.training.plan import plan_run

        path = shipped_config(base) if base else None
        flat = flatten(settings)
        try:
            plan = plan_run(path, shortcuts=flat)
        except ConfigError as e:
            raise HTTPException(422, e.problems) from None
        cfg, run_dir = plan.config, plan.run_dir.path
        self.check_limits(cfg)
        with self.lock:
            if busy := self.running():
                raise HTTPException(409, f"a run is training: {busy.id} ({busy.command}); stop it or wait")
            try:
                plan.run_dir.refuse_to_replace(overwrite)
            except MnistError as e:
                raise HTTPException(409, str(e)) from None
            sets = [word for k, v in flat.items() for word in ("--set", f"{k}={value_text(v)}")]
            command = shlex.join(["mnist", "train", *([str(path)] if path else []), *sets])
            ctx = multiprocessing.get_context("spawn")
            run = LiveRun(relative_id(self.root, run_dir), run_dir, command, cfg, ctx.Event())
            messages = ctx.Queue()
            run.process = ctx.Process(
                target=train_child, args=(to_yaml(cfg), str(run_dir), overwrite, messages, run.stop), daemon=True
            )
            run.process.start()
            self.runs[run.id] = run
        threading.Thread(target=watch, args=(run, messages), daemon=True).start()
        return run

    def check_limits(self, cfg: Config) -> None:
        info = dataset_info(cfg.data.dataset)
        params = parameter_count(cfg.model, info.in_features, len(info.classes or range(10)))
        problems = []
        if params > self.max_params:
            problems.append(f"model: {params:,} parameters; this server trains at most {self.max_params:,} (--max-params)")
        if info.kind != "table" and cfg.train.epochs > self.max_epochs:  # a truth table's epoch is 4 points
            problems.append(f"train.epochs: {cfg.train.epochs}; this server trains at most {self.max_epochs} (--max-epochs)")
        if problems:
            raise HTTPException(422, problems)

    def stop_all(self) -> None:
        """Stop every run as Ctrl-C would and wait for last.pt: at exit, multiprocessing kills what still runs."""
        live = [r for r in self.runs.values() if not r.done]
        for run in live:
            run.stop.set()
        for run in live:
            run.process.join(timeout=120)


def flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"depth": 8}} -> {"model.depth": 8}: the `--set` keys of the equivalent command."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        out |= flatten(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}": value}
    return out


def shipped_config(name: str) -> Path:
    if name not in shipped_configs():
        raise HTTPException(422, [f"config: {name!r} is none of {', '.join(shipped_configs())}"])
    return CONFIGS / f"{name}.yaml"


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def relative_id(root: Path, run_dir: Path) -> str:
    return run_dir.resolve().relative_to(root.resolve()).as_posix()


def train_child(cfg_yaml: str, run_dir: str, overwrite: bool, messages, stop) -> None:
    """The child process: train as `mnist train` does; send "started", weight copies, and how it ended."""
    import signal

    import yaml

    from mnist_cli.errors import TrainingInterrupted
    from mnist_cli.training.events import RunStarted, StepDone
    from mnist_cli.training.loop import train

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the whole group: the server says stop
    cfg = validate(yaml.safe_load(cfg_yaml))
    whole = dataset_info(cfg.data.dataset).kind == "table"
    last = 0.0

    def on_event(event) -> None:
        nonlocal last
        if isinstance(event, RunStarted):
            messages.put(("started", asdict(event)))
        elif isinstance(event, StepDone) and time.monotonic() - last > SNAPSHOT_S:
            last = time.monotonic()
            messages.put(("weights", asdict(event.record), copies(event.model, whole)))

    try:
        train(cfg, Path(run_dir), on_event, should_stop=stop.is_set, overwrite=overwrite)
        messages.put(("end", "finished", ""))
    except TrainingInterrupted as e:
        messages.put(("end", "stopped", f"{e}; resume with: mnist train --resume {shlex.quote(e.path)}"))
    except Exception as e:  # any failure ends the run, its message shown on the page
        messages.put(("end", "failed", first_line(e)))


def copies(model, whole: bool) -> dict[str, Any]:
    """numpy copies of the first layer's weights (TILES units), or of a tiny model's whole state: nothing computed."""
    if whole:
        return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    first = model.hidden[0].linear if len(model.hidden) else model.output
    return {"tiles": first.weight.detach()[:TILES].float().cpu().numpy().copy()}


class Pictures:
    """The page's pictures of a run, drawn in the server from the child's copies: the first layer as tiles, or, for
    2-input datasets, the boundary and each hidden unit over the unit square (TensorFlow Playground's)."""

    def __init__(self, cfg: Config):
        info = dataset_info(cfg.data.dataset)
        self.side, self.model = info.image_side, None
        if info.kind == "table":
            import torch

            from mnist_cli.data.datasets import normalization_for
            from mnist_cli.model import MLP

            self.norm = normalization_for(cfg.data.dataset, cfg.data.normalize)  # a truth table's are constants
            with torch.device("meta"):  # no memory, no draws from the server's RNG: the weights come with each copy
                self.model = MLP(cfg.model, info.in_features, len(info.classes or range(2)))

    def __call__(self, step: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
        import torch

        from mnist_cli.report.boundary import input_grid

        data = {k: step[k] for k in ("epoch", "step", "global_step")} | {"side": self.side}
        if self.model is None:
            data["tiles"] = arrays["tiles"].round(4).tolist()
            return data
        self.model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, assign=True)
        with torch.no_grad():
            grid = input_grid(self.model, self.norm, GRID)
        data["boundary"] = grid.probability.round(3).tolist()
        data["units"] = [unit.round(3).tolist() for layer in grid.hidden for unit in layer][:TILES]
        return data


def watch(run: LiveRun, messages) -> None:
    """A server thread: the child's messages and the run's new records into `run`, verdicts recomputed whenever health
    or an epoch arrives; a child that dies without saying how it ended fails the run."""
    pictures, read, said, started = Pictures(run.config), 0, [], False
    while not run.done:
        try:
            kind, *payload = messages.get(timeout=POLL_S)
        except queue.Empty:
            kind = None
            if not run.process.is_alive():
                run.status, run.message = "failed", f"the training process ended (exit code {run.process.exitcode})"
        if kind == "started":
            run.events.append((kind, payload[0]))
            started = True  # events.jsonl is this run's from now on: an old run's was removed before
        elif kind == "weights":
            run.snapshot = (run.snapshot[0] + 1, pictures(*payload))
        elif kind == "end":
            run.status, run.message = payload
        if started:
            read, said = follow(run, read, said)
    run.events.append(("end", {"status": run.status, "message": run.message}))
    run.process.join(timeout=30)


def follow(run: LiveRun, read: int, said: list[dict]) -> tuple[int, list[dict]]:
    """The records appended to events.jsonl since byte `read` (whole lines only) into `run.events`: (bytes read, verdicts).

    Verdicts go into the stream after the record that changed them, even when a busy server reads two epochs at once."""
    path = run.run_dir / record.EVENTS
    try:
        with open(path, "rb") as f:
            f.seek(read)
            data = f.read()
    except FileNotFoundError:
        return read, said
    end = data.rfind(b"\n") + 1
    for row in map(json.loads, data[:end].splitlines()):
        run.events.append((row["kind"], row))
        run.records.append(record.from_row(row))
        if row["kind"] in ("health", "epoch") and (found := live_verdicts(run)) != said:
            said = found
            run.events.append(("verdicts", found))
    return read + end, said


def live_verdicts(run: LiveRun) -> list[dict]:
    """The verdicts of the records so far; before the first epoch, those about layer health only."""
    from mnist_cli.report import verdicts as v
    from mnist_cli.report.run import RunRecord
    from mnist_cli.training.rundir import RunDir

    metrics, health, steps = ([r for r in run.records if isinstance(r, cls)] for cls in KINDS)
    so_far = RunRecord(RunDir(run.run_dir), run.config, metrics, health, steps, None)
    if metrics:
        return [x.as_dict() for x in v.verdicts(so_far)]
    checks = (v.vanishing_gradients, v.exploding_gradients, v.dead_units, v.saturation)
    return [found.as_dict() for check in checks if (found := check(so_far))]
