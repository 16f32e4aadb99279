"""Training losses on logits (B, classes) and integer labels (B,), picked by train.loss; validation and test losses are
always cross-entropy, so runs compare. `nll` is what F.cross_entropy computes inside, written as the 784-64x3 tutorial
writes it; `mse` is the XOR tutorial's squared error of softmax probabilities against one-hot targets."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from mnist_cli.config import TrainConfig

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_loss(cfg: TrainConfig) -> Loss:
    """The configured loss as a function of (logits, labels) -> a scalar mean over the batch."""
    smoothing = cfg.label_smoothing
    if cfg.loss == "nll":
        return lambda logits, labels: nll(logits, labels, smoothing)
    if cfg.loss == "mse":
        return mse
    return lambda logits, labels: F.cross_entropy(logits, labels, label_smoothing=smoothing)


def nll(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """log_softmax then NLL; with smoothing, (1 - s) * NLL + s * the mean over classes of -log p, as cross_entropy."""
    log_p = F.log_softmax(logits, dim=1)
    loss = F.nll_loss(log_p, labels)
    if smoothing:
        loss = (1 - smoothing) * loss + smoothing * (-log_p.mean(dim=1)).mean()
    return loss


def mse(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean squared error between softmax probabilities and one-hot targets."""
    target = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return F.mse_loss(torch.softmax(logits, dim=1), target)
