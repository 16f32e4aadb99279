"""The metrics schema: one EpochMetrics per finished epoch, written to metrics.jsonl and read back as objects."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

# Version of the metrics.jsonl row (rows written before the field existed read as 1).
# 1: epoch, losses, val accuracy, lr, timings, skipped_steps. 2: adds train_accuracy.
METRICS_SCHEMA = 2


@dataclass(frozen=True)
class EpochMetrics:
    """One finished epoch. Losses are mean cross-entropy per image; accuracies are fractions in [0, 1]."""

    epoch: int  # 1-based
    train_loss: float  # mean over the epoch's steps, label smoothing included
    val_loss: float | None  # None when the run holds out no validation images
    val_accuracy: float | None
    lr: float  # learning rate after the epoch's last step
    seconds: float  # wall time of the training steps since the previous row (this epoch's when every epoch is logged)
    samples_per_second: float
    skipped_steps: int = 0  # steps dropped for a non-finite loss (train.on_nan: skip)
    # Share of the epoch's training images the model classified right as it trained on them (training mode, with
    # dropout and augmentation, weights changing along the epoch); None in schema-1 rows.
    train_accuracy: float | None = None
    schema: int = METRICS_SCHEMA

    def as_dict(self) -> dict[str, Any]:
        """The JSON row; skipped_steps only when some were skipped, as earlier releases wrote it."""
        row = dataclasses.asdict(self)
        if not self.skipped_steps:
            del row["skipped_steps"]
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> EpochMetrics:
        """A row read back; keys a newer release added are ignored, a missing schema is version 1."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{"schema": 1} | {k: v for k, v in row.items() if k in known})


def to_jsonl(rows: list[EpochMetrics]) -> str:
    """metrics.jsonl's text: one JSON object per line."""
    return "".join(json.dumps(row.as_dict()) + "\n" for row in rows)


def from_jsonl(text: str) -> list[EpochMetrics]:
    """metrics.jsonl's rows as objects; raises ValueError (or TypeError) on a line that is not one."""
    return [EpochMetrics.from_dict(json.loads(line)) for line in text.splitlines() if line.strip()]
