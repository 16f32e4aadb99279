"""A run's records turned into the curves the figures draw: x in epochs (fractional within an epoch)."""

from __future__ import annotations

from mnist_cli.naming import layer_label
from mnist_cli.record import OUTPUT_LAYER, HealthRecord
from mnist_cli.report.figures import LayerCurve, Series
from mnist_cli.report.run import RunRecord


def steps_per_epoch(run: RunRecord) -> int | None:
    """Optimizer steps in one epoch, as recorded: by the epoch records, or (runs of the release before) the probes,
    else the last step recorded in a finished epoch."""
    if run.metrics[0].step:
        return run.metrics[0].step
    if run.health:
        return run.health[0].steps_per_epoch
    finished = {m.epoch for m in run.metrics}
    return max((s.step for s in run.steps if s.epoch in finished), default=None)


def over_steps(run: RunRecord, field: str) -> Series | None:
    """A StepRecord field ("loss", "lr") at each recorded step, nulls (non-finite losses) left out; None if none was."""
    per_epoch = steps_per_epoch(run)
    if not per_epoch:
        return None
    points = [(s.global_step / per_epoch, getattr(s, field)) for s in run.steps if getattr(s, field) is not None]
    return Series(*zip(*points, strict=True)) if points else None


def layer_curves(records: list[HealthRecord]) -> tuple[list[LayerCurve], LayerCurve | None]:
    """(hidden layers input to output, the output layer) over the probes; ([], None) when none were recorded."""
    if not records:
        return [], None
    x = [r.global_step / r.steps_per_epoch for r in records]
    curves = {
        layer.name: LayerCurve(
            name=layer_label(layer.name),
            x=x,
            grad_norm=[r.layer(layer.name).grad_norm for r in records],
            dead=[r.layer(layer.name).dead_fraction for r in records],
            saturated=[r.layer(layer.name).saturated_fraction for r in records],
        )
        for layer in records[0].layers
    }
    output = curves.pop(OUTPUT_LAYER, None)
    return list(curves.values()), output
