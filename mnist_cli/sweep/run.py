"""One run of a sweep: the function every backend calls, in a worker that trains many runs one after another."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from mnist_cli.disk import atomic_write
from mnist_cli.errors import MnistError, TrainingInterrupted, first_line
from mnist_cli.tracking import MlflowTarget

DONE = "sweep-run.json"  # written atomically once a run has finished: its record; a rerun skips the run
STOP = ".stop"  # in the sweep folder: asks every worker to stop after its current step (Ctrl-C)
STOP_POLL_S = 0.25  # workers look for the stop file at most this often (cheap even on network storage)
STATUSES = ("done", "failed", "interrupted", "pending")


@dataclass(frozen=True)
class RunSpec:
    """One cell's values, one seed, the run folder and the run's validated config (plain types, picklable)."""

    params: dict[str, Any]
    seed: int
    out_dir: str
    config: dict[str, Any]
    mlflow: MlflowTarget | None = None  # the sweep's parent run, which this run nests under


@dataclass(frozen=True)
class RunRecord:
    """What became of one run: a row of runs.csv."""

    params: dict[str, Any]
    seed: int
    out_dir: str
    status: str  # one of STATUSES
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    best_epoch: int | None = None
    train_seconds: float | None = None
    parameters: int | None = None
    error: str | None = None
    reused: bool = False  # finished by an earlier invocation of the sweep

    def as_dict(self) -> dict[str, Any]:
        """The `--json` row."""
        keys = ("params", "seed", "out_dir", "status", "val_accuracy", "test_accuracy", "train_seconds", "parameters", "error")
        return {k: getattr(self, k) for k in keys}


def pending(spec: RunSpec, status: str = "pending", error: str | None = None) -> RunRecord:
    return RunRecord(spec.params, spec.seed, spec.out_dir, status, error=error)


class StopFile:
    """The sweep's stop request, a file in the sweep folder, so workers on other machines see it too."""

    def __init__(self, sweep_dir: Path | str, parent_pid: int | None = None):
        self.path = Path(sweep_dir) / STOP
        self.parent_pid = parent_pid  # a local worker also stops when the sweep process is gone
        self._checked, self._stop = 0.0, False

    def request(self) -> None:
        self.path.touch()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._checked >= STOP_POLL_S:
            self._checked = now
            orphaned = self.parent_pid is not None and os.getppid() != self.parent_pid
            self._stop = orphaned or self.path.exists()
        return self._stop


def finished(spec: RunSpec) -> RunRecord | None:
    """The record of an earlier, finished run of `spec`; a failed record when the folder holds another config's run."""
    marker = Path(spec.out_dir) / DONE
    if not marker.is_file():
        return None
    try:
        stored = json.loads(marker.read_text())
        record = RunRecord(**{**stored["record"], "params": spec.params, "out_dir": spec.out_dir, "reused": True})
        differ = _differences(stored["config"], spec.config)
    except (OSError, ValueError, TypeError, KeyError) as e:
        return pending(spec, "failed", f"{marker} is unreadable ({first_line(e)}); delete the folder to train the run again")
    if differ:
        return pending(spec, "failed", f"{spec.out_dir} holds a finished run of another config ({differ}); use another --out")
    return record


def execute(spec: RunSpec, should_stop: Callable[[], bool]) -> RunRecord:
    """Train (or finish, from last.pt) one run into its folder; failures become a failed record, never an exception."""
    from mnist_cli.checkpoint import config_from_checkpoint, load_checkpoint
    from mnist_cli.config import validate
    from mnist_cli.training.loop import train
    from mnist_cli.training.rundir import RunDir

    done = finished(spec)
    if done is not None:
        return done
    if should_stop():
        return pending(spec)
    run_dir = RunDir(Path(spec.out_dir))
    try:
        cfg = validate(spec.config)
        resume_from = None
        if run_dir.last.is_file():
            resume_from = load_checkpoint(run_dir.last)
            differ = _differences(config_from_checkpoint(resume_from, run_dir.last).model_dump(mode="json"), spec.config)
            if differ:
                raise MnistError(f"{run_dir.last} is a run of another config ({differ}); use another --out")
        result = train(cfg, run_dir, resume_from=resume_from, should_stop=should_stop, mlflow=spec.mlflow)
    except TrainingInterrupted:
        return pending(spec, "interrupted")
    except MnistError as e:
        return pending(spec, "failed", first_line(e))
    except Exception as e:  # a bug in one run must not end the other runs; its type says it is one
        return pending(spec, "failed", f"{type(e).__name__}: {first_line(e)}")
    assert result is not None
    record = replace(
        pending(spec, "done"),
        val_accuracy=result.val_accuracy,
        test_accuracy=result.test_accuracy,
        test_loss=result.test_loss,
        best_epoch=result.best_epoch,
        train_seconds=result.train_seconds,
        parameters=result.parameters,
    )
    text = json.dumps({"record": asdict(record), "config": spec.config}, indent=1)
    atomic_write(Path(spec.out_dir) / DONE, lambda f: f.write(text.encode()))
    return record


def _differences(stored: dict[str, Any], planned: dict[str, Any]) -> str:
    """'train.lr: 0.003 there, 0.01 now; ...' for keys (other than where it ran) that differ; '' when none do."""
    from mnist_cli.config import validate
    from mnist_cli.training.plan import config_differences

    differ = config_differences(validate(stored), validate(planned))
    return "; ".join(f"{key}: {a!r} there, {b!r} now" for key, a, b in differ)
