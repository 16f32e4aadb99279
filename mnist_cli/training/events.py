"""What a training run hands its `on_event` callback (the records of events.jsonl, and RunStarted and StepDone for a
progress display) and what it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mnist_cli.record import EpochMetrics, HealthRecord, RunResult, StepRecord, TestRecord

if TYPE_CHECKING:
    from mnist_cli.model import MLP


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
    """A progress report: the step's record (appended in logged epochs), the training speed so far, and the model
    itself, to be read (copied) at once, never kept: training goes on changing it."""

    record: StepRecord
    steps: int  # per epoch
    samples_per_second: float
    model: MLP = field(repr=False, compare=False)


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
