"""Accuracy, loss, per-class accuracy and the confusion matrix of a model on a split."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mnist_cli.data import Normalization, Split, to_inputs


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float  # mean cross-entropy, no label smoothing
    n: int
    per_class: list[float]  # accuracy of each true class
    confusion: list[list[int]]  # [true][predicted] counts

    def as_dict(self) -> dict:
        return asdict(self)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: Split,
    norm: Normalization,
    num_classes: int,
    batch_size: int = 2048,
    amp: bool = False,
) -> Evaluation:
    """Evaluate `model` on `split` (on whatever device both already live on)."""
    was_training = model.training
    model.eval()
    device = split.images.device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    confusion = torch.zeros(num_classes * num_classes, device=device, dtype=torch.int64)
    for start in range(0, len(split), batch_size):
        x = to_inputs(split.images[start : start + batch_size], norm)
        y = split.labels[start : start + batch_size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        confusion += torch.bincount(y * num_classes + logits.argmax(1), minlength=num_classes * num_classes)
    model.train(was_training)
    matrix = confusion.view(num_classes, num_classes).cpu()
    n = len(split)
    correct = matrix.diag()
    per_class = (correct.double() / matrix.sum(1).clamp(min=1)).tolist()
    return Evaluation(
        accuracy=correct.sum().item() / max(n, 1),
        loss=loss_sum.item() / max(n, 1),
        n=n,
        per_class=per_class,
        confusion=matrix.tolist(),
    )
