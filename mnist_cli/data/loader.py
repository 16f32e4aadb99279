"""Batches from an in-memory split: slices of a seeded permutation of indices, gathered on the device."""

from __future__ import annotations

import torch

from mnist_cli.data.datasets import Normalization


def to_inputs(images: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """uint8 (B, *shape) -> float32 (B, *shape), (raw / norm.scale - mean) / std; per batch on the batch's device."""
    x = images.float().mul_(1.0 / (norm.scale * norm.std))
    return x.sub_(norm.mean / norm.std) if norm.mean else x  # x - 0 is x: one pass fewer


def batch_sizes(n: int, batch_size: int) -> list[int]:
    """The sizes of an epoch's batches. A trailing batch of one would break batch norm: those few images wait."""
    full, rest = divmod(n, batch_size)
    return [batch_size] * full + ([rest] if rest > 1 or (rest == 1 and full == 0) else [])


def shuffled_batches(n: int, batch_size: int, seed: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """An epoch's index batches on `device`: slices of the permutation `seed` decides (a resumed epoch's too)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: sum(batch_sizes(n, batch_size))].to(device).split(batch_size)
