"""What a training run hands its `on_event` callback (the records of events.jsonl, and RunStarted and StepDone for a
progress display) and what it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mnist_cli.record import EpochMetrics, HealthRecord, RunResult, StepRecord, TestRecord


@dataclass(frozen=True)
class RunStarted:
    device: str
    parameters: int
    n_train: int
    n_val: int
    n_test: int
    steps_per_epoch: int
    epochs: int
    out_dir: str
    notes: tuple[str, ...] = ()  # what the user should know before the run starts (train.init_from's classes)


@dataclass(frozen=True)
class StepDone:
    """A progress report: the step's record (appended in logged epochs) and the training speed so far."""

    record: StepRecord
    steps: int  # per epoch
    samples_per_second: float


Event = RunStarted | StepDone | HealthRecord | EpochMetrics | TestRecord


@dataclass(frozen=True)
class DryRun:
    """What a run would be, once the preflight checks passed: where it would write, on which device, how big."""

    out_dir: str
    device: str  # the device it would really use: `auto` resolved
    parameters: int

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": "passed", **asdict(self)}


@dataclass(frozen=True, kw_only=True)
class TrainResult(RunResult):
    """A finished run: its result.json, and where and on what it ran."""

    checkpoint: str
    out_dir: str
    device: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
