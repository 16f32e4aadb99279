"""Verdicts in plain words: what a run's metrics and layer health say went wrong, with the numbers and a next step.

`verdicts(run)` is a pure function of a RunRecord. Each check reads the run's records and returns at most one
Verdict; the thresholds below are named with the reason for their value.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mnist_cli.report.run import RunRecord
from mnist_cli.training.health import HealthRecord, LayerHealth

# A hidden layer's weight gradient below 1/1000 of the output layer's: its weights move a thousand times slower
# (with SGD) and its gradient is mostly rounding noise. Healthy MLPs on MNIST measure 0.05-20: the first layer's
# matrix is larger than the output's, so its norm is usually the larger of the two.
VANISHING_RATIO = 1e-3
# Above 1000 times the output layer's: the step sizes are set by a few huge gradients (exploding).
EXPLODING_RATIO = 1e3
# A layer in which a quarter of the units never activate on 512 images has lost a quarter of its width: healthy
# ReLU layers on MNIST measure under 10% (a few units that fire on no digit in the probe batch).
DEAD_FRACTION = 0.25
# A quarter of a sigmoid/tanh layer's units pinned to a flat end pass (almost) no gradient back.
SATURATED_FRACTION = 0.25
# Training accuracy this many points (as a fraction) above validation accuracy: the model memorises the training
# set. The default recipe ends 0.5-1 point apart (train accuracy is measured in training mode, along the epoch).
OVERFIT_GAP = 0.02
# Validation loss this far (relative) above its lowest epoch while training goes on: the model grows confidently wrong.
VAL_LOSS_RISE = 0.20
# Best accuracy under five times chance (10 classes: 50%) after a full epoch: on MNIST, Fashion-MNIST and KMNIST even
# a linear model passes 70% within one epoch, so the network is not learning (under twice chance) or barely is.
NOT_LEARNING_FACTOR = 5.0
CHANCE_FACTOR = 2.0
# Validation accuracy still rising by this much (a fraction: half a point) in the last epoch: more epochs would help.
STILL_IMPROVING = 0.005

Severity = Literal["warning", "info"]


@dataclass(frozen=True)
class Verdict:
    """One finding: a stable code, the layers it is about, a message with its numbers, and what to try next."""

    code: str  # vanishing_gradients, exploding_gradients, dead_units, saturation, overfitting, not_learning, underfitting
    severity: Severity
    layers: list[str]  # layer names ("hidden.0", ...); [] when the finding is about the whole run
    message: str
    suggestion: str
    evidence: dict[str, Any] = field(default_factory=dict)  # the numbers behind the message, plain JSON types

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.message}: {self.suggestion}"


def verdicts(run: RunRecord) -> list[Verdict]:
    """Every finding for `run`, warnings first, in a fixed order of checks."""
    checks = (not_learning, vanishing_gradients, exploding_gradients, dead_units, saturation, overfitting, underfitting)
    found = [v for check in checks if (v := check(run)) is not None]
    return sorted(found, key=lambda v: v.severity != "warning")


# --- layer health ------------------------------------------------------------------------------------------------


def vanishing_gradients(run: RunRecord) -> Verdict | None:
    """Hidden layers whose median gradient ratio to the output layer, over the first or the last epoch's probes, is
    below VANISHING_RATIO: the medians, as a layer's gradient swings by orders of magnitude from step to step."""
    if not run.health:
        return None
    first_epoch, last_epoch = run.health[0].epoch, run.health[-1].epoch
    first = _median_by_layer([r for r in run.health if r.epoch == first_epoch], lambda layer: layer.grad_ratio)
    last = _median_by_layer([r for r in run.health if r.epoch == last_epoch], lambda layer: layer.grad_ratio)
    low = sorted(
        {n for n, ratio in first.items() if ratio < VANISHING_RATIO}
        | {n for n, ratio in last.items() if ratio < VANISHING_RATIO},
        key=_layer_order,
    )
    if not low:
        return None
    from_start = all(first.get(n, 1.0) < VANISHING_RATIO for n in low)
    to_end = all(last.get(n, 1.0) < VANISHING_RATIO for n in low)
    when = {
        (True, True): " from the first epoch to the last",
        (True, False): " in the first epoch",
        (False, True): " in the last epoch",
    }.get((from_start, to_end), "")
    activation = run.config.model.activation
    why = {
        "sigmoid": "sigmoid's slope is at most 1/4, and less where it saturates",
        "tanh": "tanh's slope falls where it saturates",
    }.get(activation, "each layer scales the gradient down")
    medians = first if from_start else last
    shown = [medians[n] for n in low if n in medians]
    return Verdict(
        code="vanishing_gradients",
        severity="warning",
        layers=low,
        message=(
            f"{_layer_span(low, len(first) or len(last))}: gradients are below 1/{round(1 / VANISHING_RATIO)} of the "
            f"output layer's{when} (median ratio {_sci(min(shown))} to {_sci(max(shown))}; vanishing: {why})"
        ),
        suggestion=_vanishing_suggestion(activation, run.config.model.init, run.config.model.norm),
        evidence={
            "grad_ratio_median_first_epoch": {n: first[n] for n in low if n in first},
            "grad_ratio_median_last_epoch": {n: last[n] for n in low if n in last},
            "first_epoch": first_epoch,
            "last_epoch": last_epoch,
            "threshold": VANISHING_RATIO,
            "activation": activation,
        },
    )


def exploding_gradients(run: RunRecord) -> Verdict | None:
    """Hidden layers whose gradient is not finite at some probe, or whose median ratio exceeds EXPLODING_RATIO."""
    medians = _median_by_layer(run.health, lambda layer: layer.grad_ratio)
    non_finite = sorted(
        {
            layer.name
            for r in run.health
            for layer in r.layers
            if layer.grad_norm is not None and not math.isfinite(layer.grad_norm)
        }
    )
    high = sorted(set(non_finite) | {name for name, ratio in medians.items() if ratio > EXPLODING_RATIO}, key=_layer_order)
    if not high:
        return None
    largest = max((medians[n] for n in high if n in medians), default=math.inf)
    detail = "not finite at some probes" if non_finite else f"median ratio up to {_sci(largest)}"
    return Verdict(
        code="exploding_gradients",
        severity="warning",
        layers=high,
        message=(
            f"{_layer_span(high, max(len(medians), 1))}: gradients are above {round(EXPLODING_RATIO)} times the "
            f"output layer's ({detail}; exploding)"
        ),
        suggestion=f"lower train.lr (now {run.config.train.lr:g}), or add model.norm: batch or layer",
        evidence={"grad_ratio_median": {n: medians.get(n) for n in high}, "non_finite": non_finite, "threshold": EXPLODING_RATIO},
    )


def dead_units(run: RunRecord) -> Verdict | None:
    """Hidden layers with at least DEAD_FRACTION of their units silent on the whole probe batch at the last probe."""
    final = _last(run.health)
    if final is None:
        return None
    dead = {layer.name: layer.dead_fraction for layer in final.hidden if (layer.dead_fraction or 0.0) >= DEAD_FRACTION}
    if not dead:
        return None
    names = list(dead)
    worst = max(dead.values())
    onset = next(r for r in run.health if any((r.layer(n).dead_fraction or 0.0) >= DEAD_FRACTION for n in names))
    parts = ", ".join(f"{_human(n)} {dead[n]:.0%}" for n in names)
    cfg = run.config
    kind = "dead ReLU" if cfg.model.activation == "relu" else f"{cfg.model.activation} units stuck below zero"
    return Verdict(
        code="dead_units",
        severity="warning",
        layers=names,
        message=(
            f"{_layer_span(names, len(final.hidden))}: up to {worst:.0%} of units never activate on "
            f"{final.probe_images} probe images ({parts}; {kind}, since epoch {onset.epoch} step {onset.step})"
        ),
        suggestion=f"lower train.lr (now {cfg.train.lr:g}), use model.activation: gelu or silu, or model.init: kaiming",
        evidence={
            "dead_fraction": dead,
            "threshold": DEAD_FRACTION,
            "probe_images": final.probe_images,
            "first_seen": {"epoch": onset.epoch, "step": onset.step},
            "lr": cfg.train.lr,
        },
    )


def saturation(run: RunRecord) -> Verdict | None:
    """Hidden sigmoid/tanh layers with at least SATURATED_FRACTION of their units at a flat end at the last probe."""
    final = _last(run.health)
    if final is None:
        return None
    sat = {
        layer.name: layer.saturated_fraction for layer in final.hidden if (layer.saturated_fraction or 0.0) >= SATURATED_FRACTION
    }
    if not sat:
        return None
    names = list(sat)
    parts = ", ".join(f"{_human(n)} {sat[n]:.0%}" for n in names)
    return Verdict(
        code="saturation",
        severity="warning",
        layers=names,
        message=(
            f"{_layer_span(names, len(final.hidden))}: up to {max(sat.values()):.0%} of units sit at "
            f"{final.activation}'s flat ends ({parts}), where almost no gradient passes"
        ),
        suggestion="use model.init: xavier, model.norm: batch or layer, or model.activation: relu",
        evidence={"saturated_fraction": sat, "threshold": SATURATED_FRACTION, "activation": final.activation},
    )


# --- accuracy and loss -------------------------------------------------------------------------------------------


def not_learning(run: RunRecord) -> Verdict | None:
    """Best accuracy (validation, else training) under NOT_LEARNING_FACTOR x chance."""
    best, source = _best_accuracy(run)
    if best is None:
        return None
    chance = 1 / _classes(run)
    # Capped halfway from chance to 100%: with 2 classes (truth tables) a multiple of chance would pass 100%.
    if best >= min(NOT_LEARNING_FACTOR * chance, (1 + chance) / 2):
        return None
    how = "not learning" if best < min(CHANCE_FACTOR * chance, (1 + chance) / 2) else "barely learning"
    return Verdict(
        code="not_learning",
        severity="warning",
        layers=[],
        message=(
            f"best {source} accuracy {best:.1%} after {run.epochs_done} epoch(s), chance is {chance:.0%}: the network is {how}"
        ),
        suggestion="look at the layer-health verdicts; else try a lower train.lr, model.activation: relu, or fewer layers",
        evidence={"best_accuracy": best, "source": source, "chance": chance, "epochs": run.epochs_done},
    )


def overfitting(run: RunRecord) -> Verdict | None:
    """Last epoch's training accuracy OVERFIT_GAP above validation, or validation loss VAL_LOSS_RISE above its low."""
    last = run.metrics[-1]
    if last.val_accuracy is None:
        return None
    gap = None if last.train_accuracy is None else last.train_accuracy - last.val_accuracy
    losses = [m.val_loss for m in run.metrics if m.val_loss is not None]
    lowest = min(losses)
    rise = (losses[-1] - lowest) / lowest if lowest > 0 else 0.0
    by_gap, by_loss = gap is not None and gap > OVERFIT_GAP, len(losses) > 1 and rise > VAL_LOSS_RISE
    if not (by_gap or by_loss):
        return None
    said = []
    if gap is not None:
        said.append(f"training accuracy {last.train_accuracy:.1%}, validation {last.val_accuracy:.1%}")
    if by_loss:
        low_epoch = run.metrics[[m.val_loss for m in run.metrics].index(lowest)].epoch
        said.append(f"validation loss {losses[-1]:.3f}, {rise:.0%} above its lowest {lowest:.3f} at epoch {low_epoch}")
    return Verdict(
        code="overfitting",
        severity="warning",
        layers=[],
        message=f"{'; '.join(said)}: overfitting",
        suggestion="more model.dropout, data.augment, train.weight_decay, or fewer train.epochs",
        evidence={
            "train_accuracy": last.train_accuracy,
            "val_accuracy": last.val_accuracy,
            "gap": gap,
            "val_loss": losses[-1],
            "lowest_val_loss": lowest,
            "val_loss_rise": rise,
            "gap_threshold": OVERFIT_GAP,
            "rise_threshold": VAL_LOSS_RISE,
        },
    )


def underfitting(run: RunRecord) -> Verdict | None:
    """Validation accuracy still rising by STILL_IMPROVING in the last epoch, with no overfitting gap: train longer."""
    accs = [m.val_accuracy for m in run.metrics if m.val_accuracy is not None]
    if len(accs) < 2:
        return None
    gain = accs[-1] - accs[-2]
    last = run.metrics[-1]
    gap = None if last.train_accuracy is None else last.train_accuracy - last.val_accuracy
    if gain < STILL_IMPROVING or (gap is not None and gap > OVERFIT_GAP):
        return None
    return Verdict(
        code="underfitting",
        severity="info",
        layers=[],
        message=(
            f"validation accuracy rose {gain * 100:.1f} points in the last epoch, to {accs[-1]:.1%}: "
            "still improving when training stopped"
        ),
        suggestion=f"train longer (train.epochs: {run.config.train.epochs} now), or a wider model.width",
        evidence={"val_accuracy": accs[-1], "last_epoch_gain": gain, "threshold": STILL_IMPROVING},
    )


# --- helpers -----------------------------------------------------------------------------------------------------


def _median_by_layer(records: list[HealthRecord], value) -> dict[str, float]:
    """Per hidden layer, the median of `value(layer)` over the probes where it was measured."""
    values: dict[str, list[float]] = {}
    for record in records:
        for layer in record.hidden:
            v = value(layer)
            if v is not None and math.isfinite(v):
                values.setdefault(layer.name, []).append(v)
    return {name: statistics.median(vs) for name, vs in values.items()}


def _last(records: list[HealthRecord]) -> HealthRecord | None:
    return records[-1] if records else None


def _best_accuracy(run: RunRecord) -> tuple[float | None, str]:
    val = [m.val_accuracy for m in run.metrics if m.val_accuracy is not None]
    if val:
        return max(val), "validation"
    train = [m.train_accuracy for m in run.metrics if m.train_accuracy is not None]
    return (max(train), "training") if train else (None, "")


def _classes(run: RunRecord) -> int:
    from mnist_cli.data.datasets import class_names

    return len(class_names(run.config.data.dataset, run.config.data.root))


def _layer_order(name: LayerHealth | str) -> int:
    name = name if isinstance(name, str) else name.name
    return int(name.split(".")[1]) if name.startswith("hidden.") else 1 << 30


def _human(name: str) -> str:
    """'hidden.0' -> 'layer 1': people count hidden layers from 1."""
    return f"layer {_layer_order(name) + 1}" if name.startswith("hidden.") else name


def _layer_span(names: list[str], of: int) -> str:
    """'layer 2 of 8', 'layers 1-5 of 8' or 'layers 1, 3 of 8'."""
    numbers = sorted(_layer_order(n) + 1 for n in names)
    if len(numbers) == 1:
        return f"layer {numbers[0]} of {of}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"layers {numbers[0]}-{numbers[-1]} of {of}"
    return f"layers {', '.join(map(str, numbers))} of {of}"


def _sci(x: float) -> str:
    return f"{x:.1e}" if x < 0.01 or x >= 1000 else f"{x:.3g}"


def _vanishing_suggestion(activation: str, init: str, norm: str) -> str:
    tries = []
    if activation in ("sigmoid", "tanh"):
        tries.append("model.activation: relu")
    if init != "kaiming":
        tries.append("model.init: kaiming")
    if norm == "none":
        tries.append("model.norm: batch")
    tries.append("or fewer layers")
    return "try " + ", ".join(tries)
