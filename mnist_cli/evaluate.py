"""A model on a split: every image's probabilities (the per-image pass), then accuracy, loss, per-class and confusion."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mnist_cli.data.datasets import Normalization, Split
from mnist_cli.data.loader import to_inputs


@dataclass(frozen=True)
class ImagePredictions:
    """The per-image pass: what the model said about every image of a split, in the split's order."""

    probabilities: torch.Tensor  # (N, classes) float32, softmax of the logits
    predictions: torch.Tensor  # (N,) int64, argmax of the logits
    labels: torch.Tensor  # (N,) int64, the true classes
    loss_sum: torch.Tensor  # () float64, summed cross-entropy (no label smoothing)

    @property
    def confidence(self) -> torch.Tensor:
        """(N,) the probability of the predicted class."""
        return self.probabilities.max(1).values

    def __len__(self) -> int:
        return len(self.labels)


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
def predict_split(
    model: nn.Module, split: Split, norm: Normalization, batch_size: int = 2048, amp: bool = False
) -> ImagePredictions:
    """Run `model` over `split` in batches (on whatever device both already live on); the model's mode is kept."""
    was_training = model.training
    model.eval()
    device = split.images.device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    probabilities, predictions = [], []
    for start in range(0, len(split), batch_size):
        x = to_inputs(split.images[start : start + batch_size], norm)
        y = split.labels[start : start + batch_size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        probabilities.append(torch.softmax(logits, dim=1))
        predictions.append(logits.argmax(1))
    model.train(was_training)
    if not probabilities:
        return ImagePredictions(torch.zeros((0, 0), device=device), split.labels, split.labels, loss_sum)
    return ImagePredictions(torch.cat(probabilities), torch.cat(predictions), split.labels, loss_sum)


def summarize(predictions: ImagePredictions, num_classes: int) -> Evaluation:
    """Accuracy, mean loss, per-class accuracy and the confusion matrix of a per-image pass."""
    y, n = predictions.labels, len(predictions)
    confusion = torch.bincount(y * num_classes + predictions.predictions, minlength=num_classes * num_classes)
    matrix = confusion.view(num_classes, num_classes).cpu()
    correct = matrix.diag()
    return Evaluation(
        accuracy=correct.sum().item() / max(n, 1),
        loss=predictions.loss_sum.item() / max(n, 1),
        n=n,
        per_class=(correct.double() / matrix.sum(1).clamp(min=1)).tolist(),
        confusion=matrix.tolist(),
    )


def evaluate(
    model: nn.Module, split: Split, norm: Normalization, num_classes: int, batch_size: int = 2048, amp: bool = False
) -> Evaluation:
    """`summarize(predict_split(...))`: what validation, the final test and `mnist eval` report."""
    return summarize(predict_split(model, split, norm, batch_size, amp), num_classes)


@dataclass(frozen=True)
class TableRow:
    """One point of a truth table and what the network made of it."""

    inputs: list[int]  # (a, b) as 0/1
    target: int
    prediction: int
    probabilities: list[float]  # softmax over the classes "0", "1"

    def as_dict(self) -> dict:
        return asdict(self)


def truth_table(split: Split, predictions: ImagePredictions) -> list[TableRow]:
    """Each point of a truth-table split with the network's output for it, in the split's order."""
    return [
        TableRow(x, int(t), int(p), probs)
        for x, t, p, probs in zip(
            split.images.tolist(),
            predictions.labels.tolist(),
            predictions.predictions.tolist(),
            predictions.probabilities.tolist(),
            strict=True,
        )
    ]
