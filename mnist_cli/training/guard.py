"""Non-finite losses: found at the step they happen, without a host sync per step unless batches are skipped."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from mnist_cli.errors import NumericalError


class LossGuard:
    """train.on_nan: `stop` raises at the next check naming the first bad step; `skip` drops that step's update."""

    def __init__(self, mode: str, device: torch.device, steps_per_epoch: int, kept: Callable[[], str]):
        # `kept` says what survives a stop; asked only when stopping, not at every check.
        self.mode, self.steps_per_epoch, self.kept = mode, steps_per_epoch, kept
        # On the CPU reading the loss is a plain memory read, far cheaper than the ~6 queued tensor ops below.
        self.on_cpu = device.type == "cpu"
        # The first non-finite loss: its global step (1-based; 0 while none) and value, kept on the device.
        self.first_step = torch.zeros((), dtype=torch.long, device=device)
        self.first_value = torch.zeros((), device=device)

    def skip(self, loss: torch.Tensor) -> bool:
        """In skip mode, True when this loss is not finite and its update must not happen (one host sync)."""
        return self.mode == "skip" and not bool(torch.isfinite(loss.detach()))

    def observe(self, loss: torch.Tensor, global_step: int) -> None:
        """Remember the step of the first non-finite loss; queued on the device, no sync."""
        if self.mode != "stop":
            return
        if self.on_cpu:
            value = loss.item()
            if not math.isfinite(value) and not self.first_step:
                self.first_step, self.first_value = torch.tensor(global_step), torch.tensor(value)
            return
        new = (self.first_step == 0) & ~torch.isfinite(loss.detach())
        self.first_step = torch.where(new, global_step, self.first_step)
        self.first_value = torch.where(new, loss.detach().float(), self.first_value)

    def check(self) -> None:
        """Raise NumericalError if a non-finite loss was seen; call before anything is saved."""
        bad = int(self.first_step)
        if bad:
            epoch, step = divmod(bad - 1, self.steps_per_epoch)
            raise NumericalError(
                f"loss became {float(self.first_value)} at epoch {epoch + 1}, step {step + 1} (step {bad} of the run); "
                f"stopped, {self.kept()}; lower train.lr, or set train.on_nan: skip to drop such batches"
            )

    def check_epoch(self, skipped: int, epoch: int) -> None:
        """Stop when skip mode dropped every step of an epoch: the weights themselves have gone bad."""
        if skipped and skipped >= self.steps_per_epoch:
            raise NumericalError(
                f"every step of epoch {epoch} had a non-finite loss and was skipped; stopped, {self.kept()}; lower train.lr"
            )
