"""The Train page's API: start one training at a time, stream its records as Server-Sent Events, list and compare runs.

Training runs in a child process (multiprocessing spawn), not a thread of the server: a 4-point XOR epoch is pure
Python, and in a thread it would hold the GIL against the event loop (and `/api/predict`); `train` also sets the
process's torch thread count and RNG states, which the server's inference shares. A process trains as fast as
`mnist train`, and Stop is the same `should_stop` Ctrl-C sets. The child sends the records it appends to
events.jsonl, plus a snapshot of the first layer (and, for 2-input datasets, the decision boundary) at most every
SNAPSHOT_S, through a queue that a thread of the server drains; each stream polls that run's list.
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

SNAPSHOT_S = 0.4  # seconds between weight snapshots a run sends: the page redraws at least twice a second
POLL_S = 0.25  # a stream looks for new records this often
TILES = 32  # first-layer units drawn as tiles
GRID = 41  # points per side of the 2-input pictures
MISTAKES = 12
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
    snapshot: tuple[int, Any] = (0, None)  # (serial number, the newest weight snapshot): kept, not accumulated

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
            run = LiveRun(relative_id(self.root, run_dir), run_dir, command, cfg, None)
            ctx = multiprocessing.get_context("spawn")
            run.stop, messages = ctx.Event(), ctx.Queue()
            process = run.process = ctx.Process(
                target=train_child, args=(to_yaml(cfg), str(run_dir), overwrite, messages, run.stop), daemon=True
            )
            process.start()
            self.runs[run.id] = run
        threading.Thread(target=drain, args=(run, process, messages), daemon=True).start()
        return run

    def check_limits(self, cfg: Config) -> None:
        info = dataset_info(cfg.data.dataset)
        params = parameter_count(cfg.model, info.in_features, len(info.classes or range(10)))
        problems = [f"model: {params:,} parameters; this server trains at most {self.max_params:,} (--max-params)"] * (
            params > self.max_params
        )
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
    path = CONFIGS / f"{name}.yaml"
    if name not in shipped_configs():
        raise HTTPException(422, [f"config: {name!r} is none of {', '.join(shipped_configs())}"])
    return path


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def relative_id(root: Path, run_dir: Path) -> str:
    return run_dir.resolve().relative_to(root.resolve()).as_posix()


def train_child(cfg_yaml: str, run_dir: str, overwrite: bool, messages, stop) -> None:
    """The child process: train, sending each record, snapshots, and how it ended ("end", status, message)."""
    import signal

    import yaml

    from mnist_cli.errors import TrainingInterrupted
    from mnist_cli.training.events import RunStarted, StepDone
    from mnist_cli.training.loop import is_logged, train

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the whole group: the server says stop
    cfg = validate(yaml.safe_load(cfg_yaml))
    snap = Snapshots(cfg)
    last = [0.0]

    def on_event(event) -> None:
        if isinstance(event, StepDone):
            if is_logged(cfg.train, event.record.epoch):
                messages.put(("record", event.record))
            if time.monotonic() - last[0] > SNAPSHOT_S and (data := snap.take(event.record)):
                last[0] = time.monotonic()
                messages.put(("weights", data))
        else:
            messages.put(("started", asdict(event)) if isinstance(event, RunStarted) else ("record", event))

    try:
        train(cfg, Path(run_dir), on_event, should_stop=stop.is_set, overwrite=overwrite)
        messages.put(("end", "finished", ""))
    except TrainingInterrupted as e:
        messages.put(("end", "stopped", f"{e}; resume with: mnist train --resume {shlex.quote(e.path)}"))
    except Exception as e:  # any failure ends the run, its message shown on the page
        messages.put(("end", "failed", first_line(e)))


class Snapshots:
    """The first layer's weights and, for 2-input datasets, the boundary and hidden units over the unit square.

    The model is found by a global forward pre-hook that removes itself at the model's first forward pass, so no
    step pays for it afterwards. The grid pass runs in eval mode and draws nothing: the run's numbers stay the same.
    """

    def __init__(self, cfg: Config):
        import torch

        from mnist_cli.model import MLP

        info = dataset_info(cfg.data.dataset)
        self.side, self.model, self.norm = info.image_side, None, None
        if info.kind == "table":
            from mnist_cli.config import data_root
            from mnist_cli.data.datasets import load_dataset, normalization_for

            self.norm = normalization_for(
                cfg.data.dataset, cfg.data.normalize, load_dataset(cfg.data.dataset, data_root(cfg.data))[0]
            )

        def found(module, args) -> None:
            if isinstance(module, MLP):
                self.model = module
                self.handle.remove()

        if not cfg.train.compile:  # a global hook inside a compiled graph would break it: no snapshots then
            self.handle = torch.nn.modules.module.register_module_forward_pre_hook(found)

    def take(self, step: StepRecord) -> dict[str, Any] | None:
        import torch

        from mnist_cli.report.boundary import input_grid

        if self.model is None:
            return None
        first = self.model.hidden[0].linear if len(self.model.hidden) else self.model.output
        data: dict[str, Any] = {"epoch": step.epoch, "step": step.step, "global_step": step.global_step, "side": self.side}
        with torch.no_grad():
            if self.side:
                data["tiles"] = first.weight[:TILES].float().cpu().numpy().round(4).tolist()
            if self.norm is not None:
                training = self.model.training
                grid = input_grid(self.model, self.norm, GRID)
                self.model.train(training)
                data["boundary"] = grid.probability.round(3).tolist()
                data["units"] = [unit.round(3).tolist() for layer in grid.hidden for unit in layer][:TILES]
        return data


def drain(run: LiveRun, process, messages) -> None:
    """A server thread: the child's messages into `run`, with the verdicts recomputed whenever health or an epoch
    arrives; a child that dies without saying how it ended fails the run."""
    records: list[record.Record] = []
    said: list[dict] = []
    while not run.done:
        try:
            message = messages.get(timeout=1.0)
        except queue.Empty:
            if not process.is_alive():
                run.status, run.message = "failed", f"the training process ended (exit code {process.exitcode})"
            continue
        kind, payload = message[0], message[1]
        if kind == "weights":
            run.snapshot = (run.snapshot[0] + 1, payload)
        elif kind == "record":
            records.append(payload)
            run.events.append((payload.kind, json.loads(record.to_json(payload))))
            if isinstance(payload, HealthRecord | EpochMetrics) and (found := live_verdicts(run, records)) != said:
                said = found
                run.events.append(("verdicts", found))
        elif kind == "started":
            run.events.append((kind, payload))
        else:
            run.message, run.status = message[2], message[1]
    run.events.append(("end", {"status": run.status, "message": run.message}))
    process.join(timeout=30)


def live_verdicts(run: LiveRun, records: list[record.Record]) -> list[dict]:
    """The verdicts of the records so far; before the first epoch, those about layer health only."""
    from mnist_cli.report import verdicts as v
    from mnist_cli.report.run import RunRecord
    from mnist_cli.training.rundir import RunDir

    metrics = [r for r in records if isinstance(r, EpochMetrics)]
    health = [r for r in records if isinstance(r, HealthRecord)]
    steps = [r for r in records if isinstance(r, StepRecord)]
    so_far = RunRecord(RunDir(run.run_dir), run.config, metrics, health, steps, None)
    if metrics:
        return [x.as_dict() for x in v.verdicts(so_far)]
    checks = (v.vanishing_gradients, v.exploding_gradients, v.dead_units, v.saturation)
    return [found.as_dict() for check in checks if (found := check(so_far))]
