"""The training run: data in memory, seeded batches, per-epoch validation, checkpoints, a final test."""

from __future__ import annotations

import json
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
    class_names,
    load_dataset,
    make_loader,
    normalization_for,
    split_train_val,
    to_inputs,
)
from mnist_cli.devices import resolve_device
from mnist_cli.errors import TrainingInterrupted
from mnist_cli.evaluate import evaluate
from mnist_cli.model import build_model, count_parameters
from mnist_cli.numerics import LossGuard
from mnist_cli.optim import make_optimizer, make_scheduler
from mnist_cli.preflight import check_resources, lock_out_dir, parameter_count, prepare_out_dir, refuse_to_replace
from mnist_cli.resume import RESUME_KEY, RunState, enter_epoch, restore, snapshot

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


def train(
    cfg: Config,
    out_dir: Path,
    on_event: Callable[[Event], None] = lambda event: None,
    *,
    resume_from: dict[str, Any] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    dry_run: bool = False,
    overwrite: bool = False,
) -> TrainResult | None:
    """Train the configured MLP, writing best.pt, last.pt, config.yaml and metrics.jsonl into `out_dir`.

    `resume_from` is a loaded last.pt to continue exactly; `should_stop` is polled after every step (Ctrl-C) and
    makes the run save last.pt and raise TrainingInterrupted; `dry_run` stops after the preflight checks; a new run
    into a folder that holds another run's last.pt is refused unless `overwrite`.
    """
    # Preflight: device, output folder, data, memory and disk, all before the first step.
    device = resolve_device(cfg.train.device)
    # Data before the output folder: a run that cannot start leaves nothing behind.
    train_full, test = load_dataset(cfg.data.dataset, data_root(cfg.data))
    out_dir = prepare_out_dir(Path(out_dir), create=not dry_run)  # a dry run writes nothing
    if resume_from is None and not overwrite:
        refuse_to_replace(out_dir)
    lock = None if dry_run else lock_out_dir(out_dir)
    try:
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        train_split, val_split = split_train_val(train_full, cfg.data.val_size, cfg.seed)
        norm = normalization_for(cfg.data.dataset, cfg.data.normalize)
        classes = class_names(cfg.data.dataset)
        check_resources(cfg, out_dir, device, parameter_count(cfg, IMAGE_SIDE * IMAGE_SIDE, len(classes)))
        if dry_run:
            return None
        # The whole dataset lives on the training device as uint8; batches are gathers from it.
        train_split, val_split, test = train_split.to(device), val_split.to(device), test.to(device)

        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, IMAGE_SIDE * IMAGE_SIDE, len(classes)).to(device)
        optimizer = make_optimizer(model, cfg.train)
        generator = torch.Generator().manual_seed(cfg.seed)
        loader = make_loader(train_split, cfg.train.batch_size, shuffle=True, generator=generator)
        steps = len(loader)
        scheduler = make_scheduler(optimizer, cfg.train, steps)
        amp = cfg.train.amp and device.type == "cuda"
        forward = torch.compile(model) if cfg.train.compile else model  # shares the weights; eval uses `model`
        background = -norm.mean / norm.std  # an empty pixel after normalisation, for augmentation's borders
        report_every = max(1, steps // PROGRESS_UPDATES_PER_EPOCH)
        run = RunState() if resume_from is None else restore(resume_from, model, optimizer, scheduler, out_dir / "last.pt")
        guard = LossGuard(cfg.train.on_nan, device, steps, kept=lambda: _kept(out_dir))
        save_every = cfg.train.save_every_steps

        atomic_write(out_dir / "config.yaml", lambda f: f.write(to_yaml(cfg).encode()))
        ckpt_info = dict(config=cfg, normalization=norm, classes=classes)

        def save_last(epoch: int) -> None:
            """last.pt: the weights after `epoch` finished epochs plus where the run stands inside the next."""
            guard.check()  # never overwrite a good checkpoint with weights a NaN has reached
            state = build_checkpoint(
                model=model,
                metrics=run.history[-1] if run.history else {},
                epoch=epoch,
                optimizer=optimizer,
                scheduler=scheduler,
                extra={RESUME_KEY: snapshot(run, generator, device)},
                **ckpt_info,
            )
            save_checkpoint(state, out_dir / "last.pt")

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

        for epoch in range(run.epoch, cfg.train.epochs + 1):
            model.train()
            batches = enter_epoch(run, loader, generator, device)
            loss_sum = run.loss_sum.to(device) if run.loss_sum is not None else torch.zeros((), device=device)
            seen, skipped = run.seen, run.skipped
            t0 = time.perf_counter() - run.epoch_seconds
            for step, (images, labels) in enumerate(batches, run.step + 1):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits = forward(augment(to_inputs(images, norm), cfg.data.augment, background))
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.train.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                if guard.skip(loss):
                    skipped += 1
                else:
                    loss.backward()
                    optimizer.step()
                    loss_sum += loss.detach() * len(labels)
                    seen += len(labels)
                scheduler.step()
                guard.observe(loss, (epoch - 1) * steps + step)
                if step % report_every == 0 or step == steps:
                    guard.check()
                    on_event(StepDone(epoch, step, steps, loss.item(), seen / (time.perf_counter() - t0)))
                stop = should_stop()
                if step < steps and (stop or (save_every and ((epoch - 1) * steps + step) % save_every == 0)):
                    run.step, run.loss_sum, run.seen, run.skipped = step, loss_sum, seen, skipped
                    run.epoch_seconds = time.perf_counter() - t0
                    save_last(epoch - 1)
                    if stop:
                        raise TrainingInterrupted(str(out_dir / "last.pt"), epoch, step)
            guard.check()
            guard.check_epoch(skipped, epoch)
            epoch_seconds = time.perf_counter() - t0
            run.train_time += epoch_seconds
            run.samples += seen

            val = evaluate(model, val_split, norm, len(classes), cfg.train.eval_batch_size, amp) if len(val_split) else None
            val_acc = val.accuracy if val else None
            # Without a validation set the newest epoch counts as best.
            is_best = val is None or val.accuracy > run.best_acc
            metrics = {
                "epoch": epoch,
                "train_loss": loss_sum.item() / max(seen, 1),
                "val_loss": val.loss if val else None,
                "val_accuracy": val_acc,
                "lr": scheduler.get_last_lr()[0],
                "seconds": epoch_seconds,
                "samples_per_second": seen / epoch_seconds,
                **({"skipped_steps": skipped} if skipped else {}),
            }
            run.history.append(metrics)
            # best.pt and metrics.jsonl first, last.pt last: last.pt is the commit point a resumed run starts from.
            if is_best:
                run.best_acc, run.best_epoch = (val_acc if val_acc is not None else run.best_acc), epoch
                best = build_checkpoint(
                    model=model, metrics=metrics, epoch=epoch, optimizer=optimizer, scheduler=scheduler, **ckpt_info
                )
                save_checkpoint(best, out_dir / "best.pt")
            _write_jsonl(out_dir / "metrics.jsonl", run.history)
            run.next_epoch()
            save_last(epoch)
            on_event(EpochDone(metrics, is_best))
            if should_stop() and epoch < cfg.train.epochs:
                raise TrainingInterrupted(str(out_dir / "last.pt"), epoch + 1, 0)

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
            best_epoch=run.best_epoch,
            val_accuracy=run.best_acc if len(val_split) else None,
            test_accuracy=test_eval.accuracy,
            test_loss=test_eval.loss,
            train_seconds=run.train_time,
            samples_per_second=run.samples / run.train_time if run.train_time else 0.0,
            parameters=count_parameters(model),
        )
    finally:
        if lock is not None:  # an exception kept alive (tests, library callers) must not keep the folder locked
            lock.close()


def _kept(out_dir: Path) -> str:
    """What survives a stop: the last checkpoint written, if any."""
    last = out_dir / "last.pt"
    return f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint had been written yet"


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    atomic_write(path, lambda f: f.write(text.encode()))
