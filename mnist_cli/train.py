"""The training run: data in memory, seeded batches, per-epoch validation, checkpoints, a final test."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mnist_cli.augment import augment
from mnist_cli.checkpoint import atomic_write, build_checkpoint, save_checkpoint
from mnist_cli.config import Config, data_root, to_yaml
from mnist_cli.data import (
    IMAGE_SIDE,
    Split,
    class_names,
    load_dataset,
    make_loader,
    normalization_for,
    split_train_val,
    to_inputs,
)
from mnist_cli.devices import resolve_device
from mnist_cli.errors import MnistError
from mnist_cli.evaluate import evaluate
from mnist_cli.model import build_model, count_parameters
from mnist_cli.optim import make_optimizer, make_scheduler

PROGRESS_UPDATES_PER_EPOCH = 50  # step events per epoch; each reads the loss (a host sync on CUDA)


@dataclass(frozen=True)
class RunStarted:
    device: str
    parameters: int
    n_train: int
    n_val: int
    n_test: int
    steps_per_epoch: int
    epochs: int
    out_dir: str


@dataclass(frozen=True)
class StepDone:
    epoch: int
    step: int
    steps: int
    loss: float
    samples_per_second: float


@dataclass(frozen=True)
class EpochDone:
    metrics: dict[str, Any]  # the line written to metrics.jsonl
    is_best: bool


@dataclass(frozen=True)
class TrainResult:
    checkpoint: str
    out_dir: str
    device: str
    epochs: int
    best_epoch: int
    val_accuracy: float | None
    test_accuracy: float
    test_loss: float
    train_seconds: float
    samples_per_second: float
    parameters: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Event = RunStarted | StepDone | EpochDone


def train(cfg: Config, out_dir: Path, on_event: Callable[[Event], None] = lambda event: None) -> TrainResult:
    """Train the configured MLP, writing best.pt, last.pt, config.yaml and metrics.jsonl into `out_dir`."""
    device = resolve_device(cfg.train.device)
    out_dir = _prepare_out_dir(Path(out_dir))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    train_full, test = load_dataset(cfg.data.dataset, data_root(cfg.data))
    train_split, val_split = split_train_val(train_full, cfg.data.val_size, cfg.seed)
    norm = normalization_for(cfg.data.dataset, cfg.data.normalize)
    classes = class_names(cfg.data.dataset)
    # The whole dataset lives on the training device as uint8; batches are gathers from it.
    train_split, val_split, test = train_split.to(device), val_split.to(device), test.to(device)

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, IMAGE_SIDE * IMAGE_SIDE, len(classes)).to(device)
    optimizer = make_optimizer(model, cfg.train)
    loader = make_loader(train_split, cfg.train.batch_size, shuffle=True, generator=torch.Generator().manual_seed(cfg.seed))
    steps = len(loader)
    scheduler = make_scheduler(optimizer, cfg.train, steps)
    amp = cfg.train.amp and device.type == "cuda"
    forward = torch.compile(model) if cfg.train.compile else model  # shares the weights; eval uses `model`
    background = -norm.mean / norm.std  # an empty pixel after normalisation, for augmentation's borders
    report_every = max(1, steps // PROGRESS_UPDATES_PER_EPOCH)

    atomic_write(out_dir / "config.yaml", lambda f: f.write(to_yaml(cfg).encode()))
    history: list[dict[str, Any]] = []
    ckpt_info = dict(config=cfg, normalization=norm, classes=classes)
    best_acc, best_epoch, train_time, samples = -1.0, 0, 0.0, 0
    on_event(
        RunStarted(
            str(device),
            count_parameters(model),
            len(train_split),
            len(val_split),
            len(test),
            steps,
            cfg.train.epochs,
            str(out_dir),
        )
    )

    for epoch in range(1, cfg.train.epochs + 1):
        model.train()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        t0 = time.perf_counter()
        for step, (images, labels) in enumerate(loader, 1):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = forward(augment(to_inputs(images, norm), cfg.data.augment, background))
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.train.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(labels)
            seen += len(labels)
            if step % report_every == 0 or step == steps:
                loss_value = loss.item()
                _check_finite(loss_value, epoch, step)
                on_event(StepDone(epoch, step, steps, loss_value, seen / (time.perf_counter() - t0)))
        epoch_seconds = time.perf_counter() - t0
        train_time += epoch_seconds
        samples += seen

        val = evaluate(model, val_split, norm, len(classes), cfg.train.eval_batch_size, amp) if len(val_split) else None
        val_acc = val.accuracy if val else None
        # Without a validation set the newest epoch counts as best.
        is_best = val is None or val.accuracy > best_acc
        metrics = {
            "epoch": epoch,
            "train_loss": loss_sum.item() / seen,
            "val_loss": val.loss if val else None,
            "val_accuracy": val_acc,
            "lr": scheduler.get_last_lr()[0],
            "seconds": epoch_seconds,
            "samples_per_second": seen / epoch_seconds,
        }
        history.append(metrics)
        state = build_checkpoint(model=model, metrics=metrics, epoch=epoch, optimizer=optimizer, scheduler=scheduler, **ckpt_info)
        save_checkpoint(state, out_dir / "last.pt")
        if is_best:
            best_acc, best_epoch = (val_acc if val_acc is not None else best_acc), epoch
            save_checkpoint(state, out_dir / "best.pt")
        _write_jsonl(out_dir / "metrics.jsonl", history)
        on_event(EpochDone(metrics, is_best))

    # The test set is touched once, by the model validation picked.
    best = torch.load(out_dir / "best.pt", map_location=device, weights_only=True)
    model.load_state_dict(best["model_state"])
    test_eval = evaluate(model, test, norm, len(classes), cfg.train.eval_batch_size, amp)
    best["metrics"].update(test_accuracy=test_eval.accuracy, test_loss=test_eval.loss)
    save_checkpoint(best, out_dir / "best.pt")
    return TrainResult(
        checkpoint=str(out_dir / "best.pt"),
        out_dir=str(out_dir),
        device=str(device),
        epochs=cfg.train.epochs,
        best_epoch=best_epoch,
        val_accuracy=best_acc if len(val_split) else None,
        test_accuracy=test_eval.accuracy,
        test_loss=test_eval.loss,
        train_seconds=train_time,
        samples_per_second=samples / train_time,
        parameters=count_parameters(model),
    )


def _prepare_out_dir(out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MnistError(f"cannot create output directory {out_dir}: {e.strerror or e}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise MnistError(f"output directory {out_dir} is not writable")
    return out_dir


def _check_finite(loss: float, epoch: int, step: int) -> None:
    if loss != loss or loss in (float("inf"), float("-inf")):
        raise MnistError(f"loss became {loss} at epoch {epoch}, step {step}; lower train.lr or check the data")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    atomic_write(path, lambda f: f.write(text.encode()))


def load_split_for_eval(cfg: Config, split: str, root: Path | None = None) -> Split:
    """The test split, or the exact validation split a run with `cfg` held out."""
    train_full, test = load_dataset(cfg.data.dataset, root or data_root(cfg.data))
    if split == "test":
        return test
    _, val = split_train_val(train_full, cfg.data.val_size, cfg.seed)
    if not len(val):
        raise MnistError("this checkpoint was trained with data.val_size 0: it has no validation split")
    return val
