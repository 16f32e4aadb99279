"""The layer-health probe: at a few steps an epoch (`train.health_probes_per_epoch`, always at an epoch's last step,
and at the run's first step), gradient and update norms of every Linear, then one forward pass of a fixed probe batch
with hooks on the activations. It draws no random numbers and changes no model state, so a run trains exactly the
same with it on or off. Each probe is one HealthRecord in the run's events.jsonl."""

from __future__ import annotations

import torch

from mnist_cli.data.datasets import Normalization, Split
from mnist_cli.data.loader import to_inputs
from mnist_cli.model import MLP
from mnist_cli.record import OUTPUT_LAYER, HealthRecord, LayerHealth

PROBE_IMAGES = 512  # probe batch size: enough that "never activates" means something, small enough to cost ~nothing
RELU_FAMILY = ("relu", "gelu", "silu")  # dead units are measured for these; saturated units for sigmoid and tanh
# A sigmoid output below 0.02 or above 0.98 has slope y(1-y) < 0.0196, under 8% of its peak 0.25; a tanh output with
# |y| > 0.98 has slope 1 - y^2 < 0.04, 4% of its peak 1. Gradients through such a unit all but stop.
SIGMOID_FLAT = 0.02
TANH_FLAT = 0.98
# A unit counts as saturated when it sits at a flat end for at least this share of the probe images.
SATURATED_SHARE = 0.9


def probe_steps(steps: int, probes: int) -> set[int]:
    """The 1-based steps of an epoch at which to probe: `probes` evenly spaced, the last one the epoch's last step."""
    return {max(1, round(i * steps / probes)) for i in range(1, probes + 1)}


def probe_batch(val: Split, train: Split, norm: Normalization, seed: int, size: int = PROBE_IMAGES) -> torch.Tensor:
    """(size, 28, 28) normalised inputs: a seeded choice of validation images, or training images when there are none.

    Its own generator: the global RNG, which training draws from, is not touched.
    """
    split = val if len(val) else train
    chosen = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:size]
    return to_inputs(split.images[chosen.to(split.images.device)], norm)


class HealthProbe:
    """Measures one training step's layer health: call `before_update` between backward and the optimizer step,
    then `record` after it."""

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
        weight_norms = torch.stack([torch.linalg.vector_norm(w) for w in weights])
        measured = self._grad_norms is not None
        if measured:
            grads = torch.stack(self._grad_norms)
            updates = torch.stack([torch.linalg.vector_norm(layer.weight - w) for layer, w in zip(linears, weights, strict=True)])
            stats = torch.stack([grads, grads / grads[-1], updates / weight_norms])
        acts = self._activation_stats()
        # One host transfer for every number of this record.
        weight_norms_l = weight_norms.tolist()
        stats_l = stats.tolist() if measured else None
        acts_l = acts.tolist() if acts is not None else []
        self._grad_norms, self._weights_before = None, []
        layers = []
        for i, layer in enumerate(linears):
            is_output = i == len(linears) - 1
            a = acts_l[i] if not is_output else [None] * 4
            layers.append(
                LayerHealth(
                    name=OUTPUT_LAYER if is_output else f"hidden.{i}",
                    width=layer.out_features,
                    weight_norm=weight_norms_l[i],
                    grad_norm=stats_l[0][i] if stats_l else None,
                    grad_ratio=stats_l[1][i] if stats_l else None,
                    update_ratio=stats_l[2][i] if stats_l else None,
                    activation_mean=a[0],
                    activation_std=a[1],
                    dead_fraction=a[2] if self.activation in RELU_FAMILY else None,
                    saturated_fraction=a[3] if self.activation not in RELU_FAMILY else None,
                )
            )
        return HealthRecord(
            epoch=epoch,
            step=step,
            global_step=(epoch - 1) * self.steps_per_epoch + step,
            steps_per_epoch=self.steps_per_epoch,
            end_of_epoch=step == self.steps_per_epoch,
            loss=loss,
            activation=self.activation,
            probe_images=len(self.images),
            layers=layers,
        )

    def _activation_stats(self) -> torch.Tensor | None:
        """(hidden layers, 4): mean, std, dead share, saturated share of each hidden activation on the probe batch.

        Eval mode: dropout draws no random numbers and batch norm uses (and does not update) its running statistics.
        """
        hidden = list(self.model.hidden)
        if not hidden:
            return None
        outputs: list[torch.Tensor] = []
        hooks = [layer.act.register_forward_hook(lambda _m, _i, out: outputs.append(out.float())) for layer in hidden]
        was_training = self.model.training
        self.model.eval()
        try:
            self.model(self.images)
        finally:
            for hook in hooks:
                hook.remove()
            self.model.train(was_training)
        return torch.stack([self._layer_stats(y) for y in outputs])

    def _layer_stats(self, y: torch.Tensor) -> torch.Tensor:
        """y: (probe images, units) -> (mean, std, dead share, saturated share)."""
        dead = (y <= 0).all(0).float().mean()
        flat = (y < SIGMOID_FLAT) | (y > 1 - SIGMOID_FLAT) if self.activation == "sigmoid" else y.abs() > TANH_FLAT
        saturated = (flat.float().mean(0) >= SATURATED_SHARE).float().mean()
        return torch.stack([y.mean(), y.std(), dead, saturated])
