"""A run's record: events.jsonl (one typed record a line, as training hands them to `on_event`) and result.json.

A run folder may come from someone else: reading takes regular files of bounded size and checks every field of every
row, one line naming the file and the row. The release before's metrics/health/steps.jsonl read as the same records.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import socket
import stat
import sys
import typing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, TypeAdapter, ValidationError

from mnist_cli.disk import atomic_write
from mnist_cli.errors import MnistError

EVENTS, RESULT = "events.jsonl", "result.json"
LEGACY_LOGS = ("metrics.jsonl", "health.jsonl", "steps.jsonl")  # the release before: one file per kind
MAX_BYTES = 512 << 20  # a 10,000-epoch run with every probe on writes ~100 MB
MAX_NUMBER = 1e100  # larger values are no measurement: their sums would print as inf
MAX_COUNT = 10**12
OUTPUT_LAYER = "output"
# What a field holds, checked when a row is read (pydantic, strict: true is no count and 1.5 no whole number).
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT)]
Number = Annotated[float, Field(strict=True, ge=0, le=MAX_NUMBER, allow_inf_nan=False)]
Signed = Annotated[float, Field(strict=True, ge=-MAX_NUMBER, le=MAX_NUMBER, allow_inf_nan=False)]
Fraction = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
Name = Annotated[str, Field(strict=True, max_length=1000)]
Flag = Annotated[bool, Field(strict=True)]
WHAT = {Count: "a count", Number: "a number", Signed: "a number", Fraction: "a fraction", Name: "a string", Flag: "true or false"}


class RecordError(MnistError):
    """A run folder's record that is not what `mnist train` writes."""


@dataclass(frozen=True)
class StepRecord:
    """The training loss at one progress report (the value the progress bar shows)."""

    kind: ClassVar[str] = "step"
    epoch: Count  # 1-based
    step: Count  # 1-based within the epoch
    global_step: Count  # 1-based in the run: (epoch - 1) * steps per epoch + step
    loss: Number | None  # this step's batch loss, label smoothing included; None if it was not finite
    lr: Number  # the learning rate this step used


@dataclass(frozen=True)
class LayerHealth:
    """One layer at one probe. Norms are Frobenius norms of the Linear's weight matrix (bias excluded)."""

    name: Name  # "hidden.0", "hidden.1", ..., "output"
    width: Count  # units (output features)
    weight_norm: Number  # ||W|| before the probe step's update
    grad_norm: Number | None  # ||dLoss/dW|| of the probe step, before the optimizer step; None if the step was skipped
    grad_ratio: Number | None  # grad_norm / the output layer's grad_norm (1.0 for the output layer)
    update_ratio: Number | None  # ||W_after - W_before|| / ||W_before|| for the probe step
    # Post-activation statistics on the probe batch (eval mode); None for the output layer.
    activation_mean: Signed | None = None  # over all probe images and units
    activation_std: Number | None = None
    # Share of units whose output is <= 0 on every probe image (relu, gelu, silu); None for other activations.
    dead_fraction: Fraction | None = None
    # Share of units at a flat end (sigmoid y < 0.02 or > 0.98; tanh |y| > 0.98) on >= 90% of the probe images;
    # None for activations that do not saturate.
    saturated_fraction: Fraction | None = None


@dataclass(frozen=True)
class HealthRecord:
    """One probe: where the run stood, the step's loss, and every layer's health, input to output."""

    kind: ClassVar[str] = "health"
    epoch: Count
    step: Count
    global_step: Count
    steps_per_epoch: Count
    end_of_epoch: Flag  # the epoch's last step
    loss: Number | None  # training loss of the probe step (None if it was not finite)
    activation: Name  # model.activation, which decides whether dead or saturated units are measured
    probe_images: Count
    layers: Annotated[list[LayerHealth], Field(max_length=10_000)]  # hidden.0 ... hidden.N-1, then output

    @property
    def hidden(self) -> list[LayerHealth]:
        """The hidden layers' entries, input to output."""
        return [layer for layer in self.layers if layer.name != OUTPUT_LAYER]

    def layer(self, name: str) -> LayerHealth:
        """The entry of the layer called `name`."""
        return next(layer for layer in self.layers if layer.name == name)


@dataclass(frozen=True)
class EpochMetrics:
    """One validated epoch. Losses are mean losses per image; accuracies are fractions in [0, 1]."""

    kind: ClassVar[str] = "epoch"
    epoch: Count  # 1-based
    train_loss: Number  # mean over the epoch's steps, label smoothing included
    val_loss: Number | None  # None when the run holds out no validation images
    val_accuracy: Fraction | None
    lr: Number  # learning rate after the epoch's last step
    seconds: Number  # training time since the previous epoch record (this epoch's when every epoch is logged)
    samples_per_second: Number
    skipped_steps: Count = 0  # steps dropped for a non-finite loss (train.on_nan: skip)
    # Share of the epoch's training images classified right as the model trained on them (training mode, weights
    # changing along the epoch); None in rows of releases before it existed.
    train_accuracy: Fraction | None = None
    step: Count = 0  # the epoch's last step (0 in rows of the release before)
    global_step: Count = 0
    samples: Count = 0  # training samples since the previous epoch record (0 in rows of the release before)
    best: Flag = False  # best.pt was written with this epoch's weights

    def as_dict(self) -> dict[str, Any]:
        """The epoch's metrics as plain values, as checkpoints carry them."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TestRecord:
    """The final test of the model validation picked: the test set is touched once."""

    kind: ClassVar[str] = "test"
    epoch: Count  # the tested model's epoch
    step: Count
    global_step: Count
    accuracy: Fraction
    loss: Number  # mean cross-entropy


Record = StepRecord | HealthRecord | EpochMetrics | TestRecord
KINDS: dict[str, type] = {cls.kind: cls for cls in (StepRecord, HealthRecord, EpochMetrics, TestRecord)}


@dataclass(frozen=True)
class RunResult:
    """result.json: what a finished run reached, for compare, the sweep, predict and serve, without a checkpoint."""

    test_accuracy: Fraction
    test_loss: Number
    best_epoch: Count
    val_accuracy: Fraction | None  # None without a validation split
    epochs: Count
    parameters: Count
    train_seconds: Number
    samples_per_second: Number
    model: Name  # '784-512-512-10'
    dataset: Name
    classes: Annotated[list[Name], Field(max_length=10_000)]
    node: Name = ""  # where it trained: the host (and Ray node, in a cluster); "" in result.json of the release before


def this_node() -> str:
    """The host name, with the Ray node's id when this process belongs to a Ray cluster."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return socket.gethostname()
    return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"


def to_json(record: Record) -> str:
    """One events.jsonl line."""
    return json.dumps({"kind": record.kind, **dataclasses.asdict(record)}) + "\n"


def append(path: Path, records: list[Record]) -> None:
    """Add records at the end of events.jsonl; a killed run leaves at most a cut-short last line, dropped on reading."""
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(map(to_json, records)))


def write_events(path: Path, records: list[Record]) -> None:
    """Replace events.jsonl with `records`, atomically: a resumed run's log cut back to where its last.pt stands."""
    _write_text(path, "".join(map(to_json, records)))


def read_events(path: Path) -> list[Record]:
    """Every record in `path` (events.jsonl), checked field by field."""
    return _read_lines(path, partial(_build, None))


def from_row(row: Any) -> Record:
    """One parsed events.jsonl line as its record, every field checked."""
    return _build(None, row)


def read_run_records(folder: Path) -> list[Record]:
    """A run folder's records: events.jsonl, or the three logs of the release before; [] when there are none."""
    folder = Path(folder)
    if (folder / EVENTS).exists():
        return read_events(folder / EVENTS)
    kinds = zip(LEGACY_LOGS, (EpochMetrics, HealthRecord, StepRecord), strict=True)
    return [r for name, cls in kinds if (folder / name).exists() for r in _read_lines(folder / name, partial(_build, cls))]


def write_result(path: Path, result: RunResult) -> None:
    """result.json, atomically."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(RunResult)}  # a TrainResult says more
    _write_text(path, json.dumps(fields, indent=1) + "\n")


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def read_result(run_dir: Path | str) -> RunResult | None:
    """A finished run's result.json, checked; None when the run has none (not finished, or an older release)."""
    path = Path(run_dir) / RESULT
    if not path.exists():
        return None
    try:
        return _build(RunResult, json.loads(_read_text(path)))
    except (ValueError, RecordError) as e:
        raise RecordError(f"{path}: {_reason(e)}; {NOT_OURS}") from None


NOT_OURS = "it is damaged or was not written by mnist train"


def _read_text(path: Path) -> str:
    """A regular file's text, at most MAX_BYTES: never a FIFO that blocks, nor /dev/zero read until memory runs out."""
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise RecordError(f"{path} is not a regular file; a run folder's records are files mnist train writes")
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise RecordError(f"{path}: cannot read it ({e.strerror})") from None
    if len(data) > MAX_BYTES:
        raise RecordError(f"{path} is larger than {MAX_BYTES >> 20} MB; {NOT_OURS}")
    return data.decode(errors="replace")  # a replaced byte fails the JSON or the field check that follows


def _read_lines(path: Path, build) -> list:
    lines = _read_text(path).split("\n")
    rows = []
    for i, line in enumerate(lines, 1):
        try:
            rows += [build(json.loads(line))] if line.strip() else []
        except (ValueError, RecordError) as e:
            if i == len(lines) and not isinstance(e, RecordError):
                break  # the unterminated tail of an append a killed run left
            raise RecordError(f"{path}, line {i}: {_reason(e)}; {NOT_OURS}") from None
    return rows


def _reason(e: Exception) -> str:
    return str(e) if isinstance(e, RecordError) else f"not JSON ({e})"


def _build(cls: type | None, row: Any) -> Any:
    """`cls` (None: the row's `kind`) from a JSON object, every field checked; keys of newer releases are ignored."""
    if not isinstance(row, dict):
        raise RecordError(f"{_short(row)} is not a JSON object")
    cls = cls or KINDS.get(row.get("kind"))
    if cls is None:
        raise RecordError(f"kind {_short(row.get('kind'))} is none of {', '.join(KINDS)}")
    try:
        return _adapter(cls).validate_python(row)
    except ValidationError as e:
        raise RecordError(_problem(cls, e.errors()[0])) from None


_adapter = functools.cache(TypeAdapter)
_hints = functools.cache(partial(typing.get_type_hints, include_extras=True))


def _problem(cls: type, error: dict[str, Any]) -> str:
    """pydantic's first error in the words of a row: `epoch is 1.5, not a count`, `lacks lr`."""
    hint, name = cls, ""
    for part in error["loc"]:
        if isinstance(part, int):  # an item of Annotated[list[X], ...]
            hint = typing.get_args(typing.get_args(hint)[0])[0]
        else:
            hint, name = _hints(hint)[part], part
    if error["type"] == "missing":
        return f"lacks {name}"
    optional = type(None) in typing.get_args(hint)
    kind = typing.get_args(hint)[0] if optional else hint
    return f"{name} is {_short(error['input'])}, not {WHAT.get(kind, 'a list')}{' or null' if optional else ''}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
