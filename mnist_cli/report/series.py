"""A run's records turned into the curves the figures draw: x in epochs (fractional within an epoch)."""

from __future__ import annotations

from mnist_cli.record import OUTPUT_LAYER, HealthRecord
from mnist_cli.report.figures import LayerCurve, Series
from mnist_cli.report.run import RunRecord


def layer_label(name: str) -> str:
    """'hidden.0' -> 'layer 1' (1-based, as people count layers); 'output' stays."""
    prefix = "hidden."
    return f"layer {int(name[len(prefix) :]) + 1}" if name.startswith(prefix) else name


def steps_per_epoch(run: RunRecord) -> int | None:
    """Optimizer steps in one epoch, as recorded: by the epoch records, or (runs of the release before) the probes,
    else the last step recorded in a finished epoch."""
    first = run.metrics[0]
    if first.step:
        return first.step
    if run.health:
        return run.health[0].steps_per_epoch
    finished = {m.epoch for m in run.metrics}
    return max((s.step for s in run.steps if s.epoch in finished), default=None)


def step_loss(run: RunRecord) -> Series | None:
    """The training loss at each recorded step (non-finite ones, recorded as null, left out), or None if none was recorded."""
    per_epoch = steps_per_epoch(run)
    points = [(s.global_step / per_epoch, s.loss) for s in run.steps if s.loss is not None] if per_epoch else []
    return Series(*zip(*points, strict=True)) if points else None


def learning_rate(run: RunRecord) -> Series | None:
    """The learning rate at each recorded step, or None if none was recorded."""
    per_epoch = steps_per_epoch(run)
    if not per_epoch or not run.steps:
        return None
    return Series([s.global_step / per_epoch for s in run.steps], [s.lr for s in run.steps])


def layer_curves(records: list[HealthRecord]) -> tuple[list[LayerCurve], LayerCurve | None]:
    """(hidden layers input to output, the output layer) over the probes; ([], None) when none were recorded."""
    if not records:
        return [], None
    x = [r.global_step / r.steps_per_epoch for r in records]
    names = [layer.name for layer in records[0].layers]
    curves = {
        name: LayerCurve(
            name=layer_label(name),
            x=x,
            grad_norm=[r.layer(name).grad_norm for r in records],
            dead=[r.layer(name).dead_fraction for r in records],
            saturated=[r.layer(name).saturated_fraction for r in records],
        )
        for name in names
    }
    output = curves.pop(OUTPUT_LAYER, None)
    return list(curves.values()), output
