"""What a training run reports while it runs (events for a progress display) and what it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mnist_cli.training.metrics import EpochMetrics


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


@dataclass(frozen=True)
class StepDone:
    epoch: int
    step: int
    steps: int
    loss: float
    samples_per_second: float


@dataclass(frozen=True)
class EpochDone:
    metrics: EpochMetrics  # the row written to metrics.jsonl
    is_best: bool


Event = RunStarted | StepDone | EpochDone


@dataclass(frozen=True)
class DryRun:
    """What a run would be, once the preflight checks passed: where it would write, on which device, how big."""

    out_dir: str
    device: str  # the device it would really use: `auto` resolved
    parameters: int

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": "passed", **asdict(self)}


@dataclass(frozen=True)
class TrainResult:
    checkpoint: str
    out_dir: str
    device: str
    epochs: int
    best_epoch: int
    val_accuracy: float | None
    test_accuracy: float
    test_loss: float
    train_seconds: float
    samples_per_second: float
    parameters: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
