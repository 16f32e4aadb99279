"""Batches from an in-memory split: slices of a seeded permutation, gathered on the device, normalised per batch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mnist_cli.data.datasets import Normalization, Split


def to_inputs(images: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """uint8 (B, *shape) -> float32 (B, *shape), (raw / norm.scale - mean) / std; per batch on the batch's device."""
    scale = 1.0 / (norm.scale * norm.std)
    return images.float().mul_(scale).sub_(norm.mean / norm.std)


class SplitDataset(Dataset):
    """A Split indexed by whole batches: `ds[index_tensor]` is one gather, no per-sample work."""

    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = index.to(self.split.images.device, non_blocking=True)
        return self.split.images[index], self.split.labels[index]


class ShuffledBatches(Sampler[torch.Tensor]):
    """Yields index tensors: slices of a fresh seeded permutation each epoch (or in order)."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None = None):
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return len(self._sizes())

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        yield from order[: sum(self._sizes())].split(self.batch_size)

    def _sizes(self) -> list[int]:
        full, rest = divmod(self.n, self.batch_size)
        # A trailing batch of one would break batch norm; those few images wait for the next epoch.
        return [self.batch_size] * full + ([rest] if rest > 1 or (rest == 1 and full == 0) else [])


def make_loader(split: Split, batch_size: int, shuffle: bool, generator: torch.Generator | None = None) -> DataLoader:
    """A DataLoader that fetches whole batches from an in-memory Split."""
    sampler = ShuffledBatches(len(split), batch_size, shuffle, generator)
    # batch_size=None: the sampler already yields batches, so each fetch is one tensor gather.
    return DataLoader(SplitDataset(split), sampler=sampler, batch_size=None, num_workers=0)
