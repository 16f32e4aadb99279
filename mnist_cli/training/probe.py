"""The layer-health probe: at `train.health_probes_per_epoch` steps an epoch (always its last, and the run's first),
gradient and update norms of every Linear, then the activations of a fixed probe batch, layer by layer.
It draws no random numbers and changes no model state, so a run trains the same with it on or off."""

from __future__ import annotations

import torch

from mnist_cli.data.datasets import Normalization, Split
from mnist_cli.data.loader import to_inputs
from mnist_cli.model import MLP
from mnist_cli.record import OUTPUT_LAYER, HealthRecord, LayerHealth

PROBE_IMAGES = 512  # probe batch size: enough that "never activates" means something, small enough to cost ~nothing
RELU_FAMILY = ("relu", "gelu", "silu")  # dead units are measured for these; saturated units for sigmoid and tanh
# Slopes at these ends: sigmoid y(1-y) < 0.0196 (8% of its peak), tanh 1 - y^2 < 0.04 (4%): gradients all but stop.
SIGMOID_FLAT = 0.02
TANH_FLAT = 0.98
SATURATED_SHARE = 0.9  # a unit is saturated when at a flat end on at least this share of the probe images


def probe_steps(steps: int, probes: int) -> set[int]:
    """The 1-based steps of an epoch at which to probe: `probes` evenly spaced, the last one the epoch's last step."""
    return {max(1, round(i * steps / probes)) for i in range(1, probes + 1)}


def probe_batch(val: Split, train: Split, norm: Normalization, seed: int, size: int = PROBE_IMAGES) -> torch.Tensor:
    """(size, 28, 28) normalised inputs: a seeded choice of validation images (training ones when there are none),
    drawn from its own generator, not the global one training draws from."""
    split = val if len(val) else train
    chosen = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:size]
    return to_inputs(split.images[chosen.to(split.images.device)], norm)


class HealthProbe:
    """One step's layer health: `before_update` between backward and the optimizer step, then `record`."""

    def __init__(self, model: MLP, images: torch.Tensor, activation: str, steps_per_epoch: int, probes_per_epoch: int):
        self.model, self.images, self.activation = model, images, activation
        self.steps_per_epoch = steps_per_epoch
        self.steps = probe_steps(steps_per_epoch, probes_per_epoch)
        self._grad_norms: list[torch.Tensor] | None = None
        self._weights_before: list[torch.Tensor] = []

    def due(self, epoch: int, step: int) -> bool:
        """Probe at this step? The planned steps of every epoch, and the run's very first step (its starting health)."""
        return step in self.steps or (epoch == 1 and step == 1)

    def before_update(self) -> None:
        """Take the gradient norms and a copy of the weights, after backward and before the optimizer step."""
        linears = self.model.linears()
        self._grad_norms = [torch.linalg.vector_norm(layer.weight.grad) for layer in linears]
        self._weights_before = [layer.weight.detach().clone() for layer in linears]

    @torch.no_grad()
    def record(self, epoch: int, step: int, loss: float | None) -> HealthRecord:
        """The step's HealthRecord: norms from `before_update` (None if the step was skipped) and activation statistics."""
        linears = self.model.linears()
        weights = self._weights_before or [layer.weight.detach() for layer in linears]
        norms = torch.stack([torch.linalg.vector_norm(w) for w in weights])
        rows = [norms]
        if self._grad_norms is not None:
            grads = torch.stack(self._grad_norms)
            updates = torch.stack([torch.linalg.vector_norm(layer.weight - w) for layer, w in zip(linears, weights, strict=True)])
            rows += [grads, grads / grads[-1], updates / norms]
        # (hidden layers, 4) activation statistics; one host transfer for every number of this record
        stats = [*self._activation_stats().tolist(), [None] * 4]
        columns = torch.stack(rows).T.tolist()
        self._grad_norms, self._weights_before = None, []
        relu = self.activation in RELU_FAMILY
        layers = [
            LayerHealth(
                OUTPUT_LAYER if i == len(linears) - 1 else f"hidden.{i}",
                layer.out_features,
                *(c + [None] * (4 - len(c))),
                activation_mean=a[0],
                activation_std=a[1],
                dead_fraction=a[2] if relu else None,
                saturated_fraction=None if relu else a[3],
            )
            for i, (layer, c, a) in enumerate(zip(linears, columns, stats, strict=True))
        ]
        last = step == self.steps_per_epoch
        global_step = (epoch - 1) * self.steps_per_epoch + step
        return HealthRecord(epoch, step, global_step, self.steps_per_epoch, last, loss, self.activation, len(self.images), layers)

    def _activation_stats(self) -> torch.Tensor:
        """(hidden layers, 4): mean, std, dead share, saturated share of each hidden activation on the probe batch, in
        eval mode (dropout draws nothing, batch norm uses and keeps its running statistics)."""
        outputs, x = [], self.images.flatten(1)
        was_training = self.model.training
        self.model.eval()
        try:
            for layer in self.model.hidden:  # in eval mode a hidden layer's output is its activation's: dropout is off
                x = layer(x)
                outputs.append(x.float())
        finally:
            self.model.train(was_training)
        return torch.stack([self._layer_stats(y) for y in outputs]) if outputs else torch.empty(0, 4)

    def _layer_stats(self, y: torch.Tensor) -> torch.Tensor:
        """y: (probe images, units) -> (mean, std, dead share, saturated share); only the share the activation reports
        is measured (the other is 0)."""
        zero = y.new_zeros(())
        if self.activation in RELU_FAMILY:
            return torch.stack([y.mean(), y.std(), (y.amax(0) <= 0).float().mean(), zero])  # dead: never above 0
        flat = (y < SIGMOID_FLAT) | (y > 1 - SIGMOID_FLAT) if self.activation == "sigmoid" else y.abs() > TANH_FLAT
        return torch.stack([y.mean(), y.std(), zero, (flat.float().mean(0) >= SATURATED_SHARE).float().mean()])
