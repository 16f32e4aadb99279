"""Verdicts in plain words: what a run's metrics and layer health say went wrong, with the numbers and a next step.
Each check is a pure function of a RunRecord that returns at most one Verdict; each threshold says why its value."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mnist_cli.data.datasets import class_names
from mnist_cli.naming import layer_label, layer_number
from mnist_cli.record import EpochMetrics, HealthRecord
from mnist_cli.report.run import RunRecord

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
# The model's accuracy under five times chance (10 classes: 50%) after a full epoch: on MNIST, Fashion-MNIST and KMNIST even
# a linear model passes 70% within one epoch, so the network is not learning (under twice chance) or barely is.
NOT_LEARNING_FACTOR = 5.0
CHANCE_FACTOR = 2.0
# Validation accuracy still rising by this much (a fraction: half a point) in the last epoch: more epochs would help.
STILL_IMPROVING = 0.005


@dataclass(frozen=True)
class Verdict:
    """One finding: a stable code, the layers it is about, a message with its numbers, and what to try next."""

    code: str  # vanishing_gradients, exploding_gradients, dead_units, saturation, overfitting, not_learning, underfitting
    severity: Literal["warning", "info"]
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


def vanishing_gradients(run: RunRecord) -> Verdict | None:
    """Hidden layers whose median gradient ratio to the output layer, over the first or the last epoch's probes, is
    below VANISHING_RATIO: the medians, as a layer's gradient swings by orders of magnitude from step to step."""
    if not run.health:
        return None
    first_epoch, last_epoch = run.health[0].epoch, run.health[-1].epoch
    first, last = (_median_ratios([r for r in run.health if r.epoch == e]) for e in (first_epoch, last_epoch))
    low = sorted({n for medians in (first, last) for n, ratio in medians.items() if ratio < VANISHING_RATIO}, key=layer_number)
    if not low:
        return None
    from_start, to_end = (all(m.get(n, 1.0) < VANISHING_RATIO for n in low) for m in (first, last))
    when = {(True, True): " from the first epoch to the last", (True, False): " in the first epoch"}.get(
        (from_start, to_end), " in the last epoch" if to_end else ""
    )
    model = run.config.model
    why = {
        "sigmoid": "sigmoid's slope is at most 1/4, and less where it saturates",
        "tanh": "tanh's slope falls where it saturates",
    }.get(model.activation, "each layer scales the gradient down")
    shown = [m[n] for m in [first if from_start else last] for n in low if n in m]
    tries = [
        *(["model.activation: relu"] if model.activation in ("sigmoid", "tanh") else []),
        *(["model.init: kaiming"] if model.init != "kaiming" else []),
        *(["model.norm: batch"] if model.norm == "none" else []),
        "or fewer layers",
    ]
    return Verdict(
        "vanishing_gradients",
        "warning",
        low,
        f"{_layer_span(low, len(first) or len(last))}: gradients are below 1/{round(1 / VANISHING_RATIO)} of the "
        f"output layer's{when} (median ratio {_sci(min(shown))} to {_sci(max(shown))}; vanishing: {why})",
        "try " + ", ".join(tries),
        {
            "grad_ratio_median_first_epoch": {n: first[n] for n in low if n in first},
            "grad_ratio_median_last_epoch": {n: last[n] for n in low if n in last},
            "first_epoch": first_epoch,
            "last_epoch": last_epoch,
            "threshold": VANISHING_RATIO,
            "activation": model.activation,
        },
    )


def exploding_gradients(run: RunRecord) -> Verdict | None:
    """Hidden layers whose gradient is not finite at some probe, or whose median ratio exceeds EXPLODING_RATIO."""
    medians = _median_ratios(run.health)
    grads = [(layer.name, layer.grad_norm) for r in run.health for layer in r.layers if layer.grad_norm is not None]
    non_finite = sorted({name for name, grad in grads if not math.isfinite(grad)})
    high = sorted({*non_finite, *(n for n, ratio in medians.items() if ratio > EXPLODING_RATIO)}, key=layer_number)
    if not high:
        return None
    largest = max((medians[n] for n in high if n in medians), default=math.inf)
    detail = "not finite at some probes" if non_finite else f"median ratio up to {_sci(largest)}"
    return Verdict(
        "exploding_gradients",
        "warning",
        high,
        f"{_layer_span(high, len(run.health[-1].hidden))}: gradients are above {round(EXPLODING_RATIO)} times the "
        f"output layer's ({detail}; exploding)",
        f"lower train.lr (now {run.config.train.lr:g}), or add model.norm: batch or layer",
        {"grad_ratio_median": {n: medians.get(n) for n in high}, "non_finite": non_finite, "threshold": EXPLODING_RATIO},
    )


def dead_units(run: RunRecord) -> Verdict | None:
    """Hidden layers with at least DEAD_FRACTION of their units silent on the whole probe batch at the last probe."""
    final, dead = _at_last_probe(run, "dead_fraction", DEAD_FRACTION)
    if not dead:
        return None
    onset = next(r for r in run.health if any((r.layer(n).dead_fraction or 0.0) >= DEAD_FRACTION for n in dead))
    cfg = run.config
    kind = "dead ReLU" if cfg.model.activation == "relu" else f"{cfg.model.activation} units stuck below zero"
    return Verdict(
        "dead_units",
        "warning",
        list(dead),
        f"{_layer_span(list(dead), len(final.hidden))}: up to {max(dead.values()):.0%} of units never activate on "
        f"{final.probe_images} probe images ({_parts(dead)}; {kind}, since epoch {onset.epoch} step {onset.step})",
        f"lower train.lr (now {cfg.train.lr:g}), use model.activation: gelu or silu, or model.init: kaiming",
        {
            "dead_fraction": dead,
            "threshold": DEAD_FRACTION,
            "probe_images": final.probe_images,
            "first_seen": {"epoch": onset.epoch, "step": onset.step},
            "lr": cfg.train.lr,
        },
    )


def saturation(run: RunRecord) -> Verdict | None:
    """Hidden sigmoid/tanh layers with at least SATURATED_FRACTION of their units at a flat end at the last probe."""
    final, sat = _at_last_probe(run, "saturated_fraction", SATURATED_FRACTION)
    if not sat:
        return None
    return Verdict(
        "saturation",
        "warning",
        list(sat),
        f"{_layer_span(list(sat), len(final.hidden))}: up to {max(sat.values()):.0%} of units sit at "
        f"{final.activation}'s flat ends ({_parts(sat)}), where almost no gradient passes",
        "use model.init: xavier, model.norm: batch or layer, or model.activation: relu",
        {"saturated_fraction": sat, "threshold": SATURATED_FRACTION, "activation": final.activation},
    )


def not_learning(run: RunRecord) -> Verdict | None:
    """The delivered model's accuracy under NOT_LEARNING_FACTOR x chance: the best validation accuracy (best.pt's
    epoch), or without validation the last epoch's training accuracy (the last epoch is then best.pt)."""
    val = [m.val_accuracy for m in run.metrics if m.val_accuracy is not None]
    accuracy, source = (max(val), "validation") if val else (run.metrics[-1].train_accuracy, "training")
    if accuracy is None:
        return None
    chance = 1 / len(class_names(run.config.data.dataset, run.config.data.root))
    # Capped halfway from chance to 100%: with 2 classes (truth tables) a multiple of chance would pass 100%.
    if accuracy >= min(NOT_LEARNING_FACTOR * chance, (1 + chance) / 2):
        return None
    how = "not learning" if accuracy < min(CHANCE_FACTOR * chance, (1 + chance) / 2) else "barely learning"
    which = "best validation" if val else "final training"
    linear = run.config.model.depth == 0 and run.config.data.dataset == "xor"
    return Verdict(
        "not_learning",
        "warning",
        [],
        f"{which} accuracy {accuracy:.1%} after {run.epochs_done} epoch(s), chance is {chance:.0%}: the network is {how}",
        "a network without a hidden layer draws one straight line, which cannot separate XOR's points: add a hidden "
        "layer (model.depth: 1)"
        if linear
        else "look at the layer-health verdicts; else try a lower train.lr, model.activation: relu, or fewer layers",
        {f"{'best' if val else 'final'}_accuracy": accuracy, "source": source, "chance": chance, "epochs": run.epochs_done},
    )


def overfitting(run: RunRecord) -> Verdict | None:
    """Last epoch's training accuracy OVERFIT_GAP above validation, or validation loss VAL_LOSS_RISE above its low."""
    last = run.metrics[-1]
    if last.val_accuracy is None:
        return None
    gap = _gap(last)
    losses = [m.val_loss for m in run.metrics if m.val_loss is not None]
    lowest = min(losses)
    rise = (losses[-1] - lowest) / lowest if lowest > 0 else 0.0
    by_gap, by_loss = gap is not None and gap > OVERFIT_GAP, len(losses) > 1 and rise > VAL_LOSS_RISE
    if not (by_gap or by_loss):
        return None
    said = [] if gap is None else [f"training accuracy {last.train_accuracy:.1%}, validation {last.val_accuracy:.1%}"]
    if by_loss:
        low_epoch = next(m.epoch for m in run.metrics if m.val_loss == lowest)
        said.append(f"validation loss {losses[-1]:.3f}, {rise:.0%} above its lowest {lowest:.3f} at epoch {low_epoch}")
    return Verdict(
        "overfitting",
        "warning",
        [],
        f"{'; '.join(said)}: overfitting",
        "more model.dropout, data.augment, train.weight_decay, or fewer train.epochs",
        {
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
    gap = _gap(run.metrics[-1])
    if len(accs) < 2 or accs[-1] - accs[-2] < STILL_IMPROVING or (gap is not None and gap > OVERFIT_GAP):
        return None
    gain = accs[-1] - accs[-2]
    return Verdict(
        "underfitting",
        "info",
        [],
        f"validation accuracy rose {gain * 100:.1f} points in the last epoch, to {accs[-1]:.1%}: "
        "still improving when training stopped",
        f"train longer (train.epochs: {run.config.train.epochs} now), or a wider model.width",
        {"val_accuracy": accs[-1], "last_epoch_gain": gain, "threshold": STILL_IMPROVING},
    )


def _median_ratios(records: list[HealthRecord]) -> dict[str, float]:
    """Per hidden layer, the median gradient ratio to the output layer over the probes where it was finite."""
    values: dict[str, list[float]] = {}
    for record in records:
        for layer in record.hidden:
            if layer.grad_ratio is not None and math.isfinite(layer.grad_ratio):
                values.setdefault(layer.name, []).append(layer.grad_ratio)
    return {name: statistics.median(vs) for name, vs in values.items()}


def _at_last_probe(run: RunRecord, field_name: str, threshold: float) -> tuple[HealthRecord | None, dict[str, float]]:
    """The last probe, and its hidden layers whose `field_name` (a fraction of units) is at least `threshold`."""
    final = run.health[-1] if run.health else None
    hidden = final.hidden if final else []
    return final, {h.name: getattr(h, field_name) for h in hidden if (getattr(h, field_name) or 0.0) >= threshold}


def _gap(m: EpochMetrics) -> float | None:
    return None if m.train_accuracy is None or m.val_accuracy is None else m.train_accuracy - m.val_accuracy


def _parts(fractions: dict[str, float]) -> str:
    return ", ".join(f"{layer_label(n)} {f:.0%}" for n, f in fractions.items())


def _layer_span(names: list[str], of: int) -> str:
    """'layer 2 of 8', 'layers 1-5 of 8' or 'layers 1, 3 of 8'."""
    numbers = sorted(layer_number(n) for n in names)
    if len(numbers) == 1:
        return f"layer {numbers[0]} of {of}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"layers {numbers[0]}-{numbers[-1]} of {of}"
    return f"layers {', '.join(map(str, numbers))} of {of}"


def _sci(x: float) -> str:
    return f"{x:.1e}" if x < 0.01 or x >= 1000 else f"{x:.3g}"
