"""Layer health recorded while training: per-layer gradients, update sizes, dead and saturated units, on a probe batch.

Two JSON-lines files in the run folder, both appended to as the run goes and cut back to last.pt's position on resume:
- health.jsonl: one HealthRecord per probe (`train.health_probes_per_epoch` times an epoch, always at an epoch's last step,
  and at the run's first step), each with one LayerHealth per hidden layer (`hidden.0`, ...) and one for `output`.
- steps.jsonl: one StepRecord (training loss and learning rate of that step) at the progress-report cadence.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

# Version of the health.jsonl and steps.jsonl rows.
HEALTH_SCHEMA = 1
STEPS_SCHEMA = 1

OUTPUT_LAYER = "output"
PROBE_IMAGES = 512  # probe batch size: enough that "never activates" means something, small enough to cost ~nothing
RELU_FAMILY = ("relu", "gelu", "silu")  # dead units are measured for these
SQUASHING = ("sigmoid", "tanh")  # saturated units are measured for these
# A sigmoid output below 0.02 or above 0.98 has slope y(1-y) < 0.0196, under 8% of its peak 0.25; a tanh output with
# |y| > 0.98 has slope 1 - y^2 < 0.04, 4% of its peak 1. Gradients through such a unit all but stop.
SIGMOID_FLAT = 0.02
TANH_FLAT = 0.98
# A unit counts as saturated when it sits at a flat end for at least this share of the probe images.
SATURATED_SHARE = 0.9


def hidden_name(index: int) -> str:
    """The name of hidden layer `index` (0-based), as the model's module path spells it."""
    return f"hidden.{index}"


@dataclass(frozen=True)
class LayerHealth:
    """One layer at one probe. Norms are Frobenius norms of the Linear's weight matrix (bias excluded)."""

    name: str  # "hidden.0", "hidden.1", ..., "output"
    width: int  # units (output features)
    weight_norm: float  # ||W|| before the probe step's update
    grad_norm: float | None  # ||dLoss/dW|| of the probe step, before the optimizer step; None if the step was skipped
    grad_ratio: float | None  # grad_norm / the output layer's grad_norm (1.0 for the output layer)
    update_ratio: float | None  # ||W_after - W_before|| / ||W_before|| for the probe step
    # Post-activation statistics on the probe batch (eval mode); None for the output layer.
    activation_mean: float | None = None  # over all probe images and units
    activation_std: float | None = None
    # Share of units whose output is <= 0 on every probe image (relu, gelu, silu); None for other activations.
    dead_fraction: float | None = None
    # Share of units at a flat end (sigmoid y < 0.02 or > 0.98; tanh |y| > 0.98) on >= 90% of the probe images;
    # None for activations that do not saturate.
    saturated_fraction: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> LayerHealth:
        return cls(**known_fields(cls, row))


@dataclass(frozen=True)
class HealthRecord:
    """One probe: where the run stood, the step's loss, and every layer's health, input to output."""

    epoch: int  # 1-based
    step: int  # 1-based step within the epoch
    global_step: int  # 1-based step of the run: (epoch - 1) * steps_per_epoch + step
    steps_per_epoch: int
    end_of_epoch: bool  # the epoch's last step
    loss: float | None  # training loss of the probe step (None if it was not finite)
    activation: str  # model.activation, which decides whether dead or saturated units are measured
    probe_images: int
    layers: list[LayerHealth]  # hidden.0 ... hidden.N-1, then output
    schema: int = HEALTH_SCHEMA

    @property
    def hidden(self) -> list[LayerHealth]:
        """The hidden layers' entries, input to output."""
        return [layer for layer in self.layers if layer.name != OUTPUT_LAYER]

    def layer(self, name: str) -> LayerHealth:
        """The entry of the layer called `name`."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["layers"] = [layer.as_dict() for layer in self.layers]
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> HealthRecord:
        """A row read back; keys a newer release added are ignored."""
        fields = known_fields(cls, row)
        fields["layers"] = [LayerHealth.from_dict(layer) for layer in row["layers"]]
        return cls(**fields)


@dataclass(frozen=True)
class StepRecord:
    """The training loss at one progress report (the value the progress bar shows)."""

    epoch: int
    step: int  # 1-based within the epoch
    global_step: int
    loss: float  # this step's batch loss, label smoothing included (nan or inf if it was not finite)
    lr: float  # the learning rate this step used
    schema: int = STEPS_SCHEMA

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> StepRecord:
        return cls(**known_fields(cls, row))


def known_fields(cls: type, row: dict[str, Any]) -> dict[str, Any]:
    """The entries of `row` that name fields of dataclass `cls`: keys a newer release added are ignored."""
    known = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in row.items() if k in known}


def to_jsonl(rows: list[HealthRecord] | list[StepRecord]) -> str:
    """JSON-lines text: one object per row."""
    return "".join(json.dumps(row.as_dict()) + "\n" for row in rows)


def parse_jsonl(text: str, kind: type[HealthRecord] | type[StepRecord]) -> list:
    """Rows of `kind`; a last line cut short by a killed run (no newline) is dropped, any other bad line raises
    ValueError (or TypeError, KeyError)."""
    lines = text.split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(kind.from_dict(json.loads(line)))
        except ValueError:
            if i == len(lines) - 1:  # the unterminated tail of an append that was interrupted
                break
            raise
    return rows
