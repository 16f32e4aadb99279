"""A training step's loss and gradients, two ways with the same two calls, `loss(x, labels)` then `backward()`.

`Backprop`, by hand, for the tutorials' MLPs (Linear, then relu, sigmoid or tanh; no norm, no dropout) under plain
cross-entropy: the kernels the modules and autograd would call, on the same tensors in the same order, so the gradients
are bit-identical, without autograd's engine and nn.Module's attribute lookups, which at batch 15 took about a quarter
of a step (docs/performance.md). `Autograd` for every other run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mnist_cli.config import Config
from mnist_cli.model import MLP

aten = torch.ops.aten
MEAN, IGNORE = 1, -100  # F.cross_entropy's reduction (at::Reduction::Mean) and ignore_index
# Each activation's forward (as its nn module calls it) and backward from its output y (as autograd's node computes it).
ACTIVATIONS = {
    "relu": (torch.relu, lambda g, y: aten.threshold_backward(g, y, 0)),
    "sigmoid": (torch.sigmoid, aten.sigmoid_backward),
    "tanh": (torch.tanh, aten.tanh_backward),
}


def applies(cfg: Config) -> bool:
    """Whether a run's model and loss are the ones `Backprop` computes."""
    model, train = cfg.model, cfg.train
    plain = model.activation in ACTIVATIONS and model.norm == "none" and model.dropout == 0
    return plain and train.loss != "mse" and train.label_smoothing == 0 and not (train.compile or train.amp)


class Backprop:
    """`loss` is the forward pass and the loss without a graph; `backward` then sets every parameter's `.grad`."""

    def __init__(self, model: MLP, activation: str):
        self.layers = [(linear.weight, linear.bias) for linear in model.linears()]  # the live parameters, input to output
        self.activation, self.activation_backward = ACTIVATIONS[activation]
        self.one = torch.ones((), device=model.output.weight.device)  # d loss / d loss
        self.saved: tuple = ()

    @torch.no_grad()
    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, mean cross-entropy): the MLP's forward pass, then F.cross_entropy's log_softmax and nll_loss."""
        inputs = [x.flatten(1)]  # each layer's input
        for weight, bias in self.layers[:-1]:
            inputs.append(self.activation(F.linear(inputs[-1], weight, bias)))
        logits = F.linear(inputs[-1], *self.layers[-1])
        log_p = torch.log_softmax(logits, 1)
        loss, total_weight = aten.nll_loss_forward(log_p, labels, None, MEAN, IGNORE)
        self.saved = (inputs, log_p, labels, total_weight)
        return logits, loss

    @torch.no_grad()
    def backward(self) -> None:
        """Every Linear's weight.grad = g^T x and bias.grad = sum of g over the batch, output to input."""
        inputs, log_p, labels, total_weight = self.saved
        g = aten.nll_loss_backward(self.one, log_p, labels, None, MEAN, IGNORE, total_weight)
        g = aten._log_softmax_backward_data(g, log_p, 1, log_p.dtype)  # d loss / d logits, (B, classes)
        for i in reversed(range(len(self.layers))):
            weight, bias = self.layers[i]
            weight.grad, bias.grad = torch.mm(g.t(), inputs[i]), g.sum(0)
            if i:  # back through layer i's activation, whose output is layer i + 1's input
                g = self.activation_backward(torch.mm(g, weight), inputs[i])
        self.saved = ()


class Autograd:
    """The model's forward pass under `autocast` (bf16 with train.amp), the loss in float32, autograd's backward."""

    def __init__(self, forward: Callable, loss_fn: Callable, autocast: contextlib.AbstractContextManager):
        self.forward, self.loss_fn, self.autocast = forward, loss_fn, autocast
        self.saved: torch.Tensor | None = None

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast:
            logits = self.forward(x)
        self.saved = self.loss_fn(logits.float(), labels)
        return logits, self.saved

    def backward(self) -> None:
        self.saved.backward()
        self.saved = None
