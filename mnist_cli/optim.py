"""Optimizers and learning-rate schedules from the train config."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from mnist_cli.config import TrainConfig

ONECYCLE_DEFAULT_WARMUP = 0.25  # fraction of the run spent ramping up when warmup_epochs is 0
ONECYCLE_START = 1 / 25  # onecycle starts at lr/25, like torch's OneCycleLR
# Devices with fused optimizer steps (one kernel for all parameters): on the CPU a third of foreach's time.
FUSED_DEVICES = ("cpu", "cuda")


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD with momentum over all parameters, fused where the device has the kernels."""
    params = list(model.parameters())
    fused = all(p.device.type in FUSED_DEVICES for p in params) or None
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=fused)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def step_function(optimizer: torch.optim.Optimizer) -> Callable[[], object]:
    """`optimizer.step`, or for a fused Adam or AdamW on the CPU the call of its one kernel that step ends in: the same
    kernel with the same arguments (bit-identical), without ~90 us of Python around a ~40 us kernel at batch 15."""
    kernel = {torch.optim.Adam: torch._fused_adam_, torch.optim.AdamW: torch._fused_adamw_}.get(type(optimizer))
    group = optimizer.param_groups[0]
    on_cpu = all(p.device.type == "cpu" for p in group["params"])
    if not (kernel and on_cpu and group["fused"]) or len(optimizer.param_groups) > 1 or group["amsgrad"] or group["maximize"]:
        return optimizer.step

    ones = [torch.ones(()) for _ in group["params"]]

    def step() -> None:
        group = optimizer.param_groups[0]  # load_state_dict replaces the group; the schedule sets its lr
        params = group["params"]
        states, grads = [optimizer.state[p] for p in params], [p.grad for p in params]
        if not all(states) or any(g is None for g in grads):  # torch's step makes the state and skips unused weights
            optimizer.step()
            return
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, ones)  # a list of ones: the fast path (~7 us; adding the number 1 takes ~17)
        beta1, beta2 = group["betas"]
        moments = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        hyper = {"lr": group["lr"], "weight_decay": group["weight_decay"], "eps": group["eps"]}
        kernel(params, grads, *moments, [], steps, beta1=beta1, beta2=beta2, amsgrad=False, maximize=False, **hyper)

    return step


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the base lr after `step` optimizer steps out of `total`."""
    if schedule == "onecycle":
        warmup = warmup or round(ONECYCLE_DEFAULT_WARMUP * total)
        if step < warmup:
            return ONECYCLE_START + (1 - ONECYCLE_START) * step / warmup
        return max(0.0, 1 - (step - warmup) / max(1, total - warmup))
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "cosine":
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return 1.0


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """A per-step LambdaLR; its state is plain numbers, so it checkpoints with weights_only."""
    total = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, warmup, cfg.schedule))
