"""Pure helpers of the benchmark: summaries of repeated measurements and FLOP counts."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from itertools import pairwise


def summarize(values: Sequence[float]) -> dict[str, float | int]:
    """Median, min, max and count of repeated measurements."""
    if not values:
        raise ValueError("no measurements to summarize")
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def mlp_parameters(sizes: Sequence[int]) -> int:
    """Weights and biases of a plain MLP with layer sizes like [784, 512, 512, 10]."""
    return sum(i * o + o for i, o in pairwise(sizes))


def train_flops_per_sample(sizes: Sequence[int]) -> int:
    """6 x parameters: 2 FLOPs per weight in the forward pass, 4 in the backward (inputs' and weights' grads)."""
    return 6 * mlp_parameters(sizes)


def matmul_flops(batch: int, sizes: Sequence[int]) -> int:
    """FLOPs of the forward and backward matrix multiplies of one training step (3 per layer, 2*B*in*out each)."""
    return sum(6 * batch * i * o for i, o in pairwise(sizes))


def fmt(summary: dict[str, float | int], digits: int = 2, scale: float = 1.0) -> str:
    """'median (min-max)' for a table cell."""
    med, lo, hi = (summary[k] * scale for k in ("median", "min", "max"))
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"
