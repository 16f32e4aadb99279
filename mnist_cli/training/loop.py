"""The training run in phases that read top to bottom: preflight, set-up, epochs (train, then end the epoch), final test."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mnist_cli.augment import augment
from mnist_cli.checkpoint import build_checkpoint, config_from_checkpoint, load_checkpoint, save_checkpoint
from mnist_cli.config import Config, TrainConfig, data_root, to_yaml
from mnist_cli.data.datasets import Normalization, Split, class_names, load_dataset, normalization_for, split_train_val
from mnist_cli.data.loader import make_loader, to_inputs
from mnist_cli.devices import resolve_device
from mnist_cli.disk import atomic_write
from mnist_cli.errors import CheckpointError, TrainingInterrupted
from mnist_cli.evaluate import evaluate
from mnist_cli.losses import Loss, make_loss
from mnist_cli.model import MLP, build_model, count_parameters
from mnist_cli.optim import make_optimizer, make_scheduler
from mnist_cli.training.events import DryRun, EpochDone, Event, RunStarted, StepDone, TrainResult
from mnist_cli.training.guard import LossGuard
from mnist_cli.training.health import StepRecord
from mnist_cli.training.init_from import initial_weights, matching_weights
from mnist_cli.training.metrics import EpochMetrics
from mnist_cli.training.plan import config_differences
from mnist_cli.training.preflight import check_resources, parameter_count
from mnist_cli.training.probe import HealthProbe, probe_batch
from mnist_cli.training.rundir import RunDir
from mnist_cli.training.state import RESUME_KEY, RunState, enter_epoch, isolated_process_state, restore, snapshot

PROGRESS_UPDATES_PER_EPOCH = 50  # step events per epoch; each reads the loss (a host sync on CUDA)


@dataclass
class Run:
    """Everything set-up makes, which the phases below share."""

    cfg: Config
    run_dir: RunDir
    device: torch.device
    train_split: Split
    val_split: Split
    test_split: Split
    norm: Normalization
    classes: list[str]
    model: MLP
    forward: Callable[[torch.Tensor], torch.Tensor]  # the model, or its torch.compile'd twin sharing the weights
    loss: Loss  # train.loss: (logits, labels) -> the batch's mean loss
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator  # the sampler's; its state at each epoch start is saved for resume
    loader: Any
    steps: int  # per epoch
    guard: LossGuard
    state: RunState
    amp: bool
    health: HealthProbe | None  # None with train.health off
    notes: tuple[str, ...] = ()  # for RunStarted: what the run started from (train.init_from)

    @property
    def in_features(self) -> int:
        return self.train_split.images[0].numel()

    def checkpoint(self, metrics: dict[str, Any], epoch: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return build_checkpoint(
            model=self.model,
            config=self.cfg,
            normalization=self.norm,
            classes=self.classes,
            metrics=metrics,
            epoch=epoch,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            extra=extra,
        )


def train(
    cfg: Config,
    out_dir: Path | RunDir,
    on_event: Callable[[Event], None] = lambda event: None,
    *,
    resume_from: dict[str, Any] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    dry_run: bool = False,
    overwrite: bool = False,
) -> TrainResult | DryRun:
    """Train the configured MLP, writing best.pt, last.pt, config.yaml and metrics.jsonl into `out_dir`.

    `resume_from` is a loaded last.pt to continue exactly; `should_stop` is polled after every step (Ctrl-C) and
    makes the run save last.pt and raise TrainingInterrupted; `dry_run` stops after the preflight checks and returns
    what would run. A new run into a folder that holds another run's last.pt is refused unless `overwrite`, which
    removes that run's files before the first save. Threads and RNG states the run changes are put back when it
    returns, so runs in one process do not affect each other.
    """
    run_dir = out_dir if isinstance(out_dir, RunDir) else RunDir(Path(out_dir))
    device, splits, parameters = preflight(cfg, run_dir, resume_from, overwrite=overwrite, dry_run=dry_run)
    if dry_run:
        return DryRun(str(run_dir), str(device), parameters)
    threads = cfg.train.threads or recorded_threads(resume_from)
    with run_dir.locked(), isolated_process_state(device, threads):
        if overwrite and resume_from is None:
            run_dir.remove_previous_run()  # under the lock: never another live run's files
        run = set_up(cfg, run_dir, device, splits, resume_from)
        on_event(
            RunStarted(
                str(device),
                count_parameters(run.model),
                len(run.train_split),
                len(run.val_split),
                len(run.test_split),
                run.steps,
                cfg.train.epochs,
                str(run_dir),
                notes=thread_notes(threads, cfg.train.threads is None and resume_from is not None) + run.notes,
            )
        )
        for epoch in range(run.state.epoch, cfg.train.epochs + 1):
            train_epoch(run, epoch, on_event, should_stop)
            saved = end_epoch(run, epoch, on_event)
            if should_stop() and epoch < cfg.train.epochs:
                if not saved:
                    save_last(run, epoch)
                raise TrainingInterrupted(str(run_dir.last), epoch + 1, 0)
        return final_test(run)


def preflight(
    cfg: Config, run_dir: RunDir, resume_from: dict[str, Any] | None, overwrite: bool, dry_run: bool
) -> tuple[torch.device, tuple[Split, Split, Split], int]:
    """Device, data, output folder, memory and disk, all checked before the first step.

    Nothing is written: a refused run (or a dry run) leaves no folder and no .lock behind; the folder is made when
    the run takes its lock. A dry run does not download the dataset, it says it is missing. Returns the device, the
    (train, val, test) splits and the model's parameter count.
    """
    device = resolve_device(cfg.train.device)
    data = cfg.data
    train_full, test = load_dataset(data.dataset, data_root(data), not dry_run, data.test_root, data.skip_bad_files)
    run_dir.prepare(create=False)
    if resume_from is None:
        run_dir.refuse_to_replace(overwrite)
    else:
        check_best(run_dir, resume_from)
    classes = class_names(data.dataset, data.root)
    train_split, val_split = split_train_val(train_full, data.val_size, cfg.seed, classes if data.dataset == "folder" else None)
    in_features = train_full.images[0].numel()
    parameters = parameter_count(cfg, in_features, len(classes))
    if cfg.train.init_from and resume_from is None:  # issue 21: a checkpoint that cannot start this run, refused here
        with torch.device("meta"):  # shapes only, nothing allocated
            shapes = build_model(cfg.model, in_features, len(classes))
        matching_weights(shapes, cfg.train.init_from, classes)
    check_resources(cfg, run_dir, device, parameters, in_features, train_full.images.nbytes + test.images.nbytes)
    return device, (train_split, val_split, test), parameters


def check_best(run_dir: RunDir, resume_from: dict[str, Any]) -> None:
    """A resumed run ends by testing its best.pt: refuse, before training, one that is missing, corrupt or another run's."""
    payload = resume_from.get(RESUME_KEY) or {}
    best_epoch = payload.get("best_epoch")
    if not best_epoch:
        return  # no epoch has finished: the first one writes best.pt
    fix = "restore it from a backup, or start a new run with --overwrite"
    try:
        best = load_checkpoint(run_dir.best)
    except CheckpointError as e:
        raise CheckpointError(f"cannot resume: the run's best model is needed for its final test, but {e}; {fix}") from None
    differ = config_differences(config_from_checkpoint(best, run_dir.best), config_from_checkpoint(resume_from, run_dir.last))
    if best.get("epoch") != best_epoch or differ:
        raise CheckpointError(
            f"cannot resume: {run_dir.best} is not this run's best model (epoch {best.get('epoch')!r}, "
            f"the run's best is epoch {best_epoch}{', another config' if differ else ''}); {fix}"
        )


def recorded_threads(resume_from: dict[str, Any] | None) -> int | None:
    """The CPU thread count the resumed run used (recorded since this release), so it continues bit for bit."""
    threads = ((resume_from or {}).get(RESUME_KEY) or {}).get("threads")
    return threads if type(threads) is int and threads >= 1 else None


def thread_notes(threads: int | None, resumed: bool) -> tuple[str, ...]:
    """What the user should know about the thread count of a resumed run."""
    if not resumed:
        return ()
    if threads is None:
        return ("this last.pt does not record its thread count; a different count changes the last bits of the result",)
    if torch.get_num_threads() != threads:
        return (
            f"the run used {threads} CPU threads but torch runs {torch.get_num_threads()} here; "
            "the result may differ from an unbroken run in the last bits",
        )
    return ()


def set_up(
    cfg: Config, run_dir: RunDir, device: torch.device, splits: tuple[Split, Split, Split], resume_from: dict[str, Any] | None
) -> Run:
    """Data on the device, a seeded model, optimizer, schedule and sampler; a resumed run's state put back."""
    # The whole dataset lives on the training device as uint8; batches are gathers from it.
    train_split, val_split, test_split = (s.to(device) for s in splits)
    classes = class_names(cfg.data.dataset, cfg.data.root)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, train_split.images[0].numel(), len(classes))
    # Fine-tuning (issue 21): a new run starts from train.init_from's weights; a resumed one from its last.pt.
    notes, start_norm = initial_weights(model, cfg.train.init_from, classes, resume_from) if cfg.train.init_from else ((), None)
    model = model.to(device)
    optimizer = make_optimizer(model, cfg.train)
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = make_loader(train_split, cfg.train.batch_size, shuffle=True, generator=generator)
    steps = len(loader)
    scheduler = make_scheduler(optimizer, cfg.train, steps)
    state = (
        RunState()
        if resume_from is None
        else restore(resume_from, model, optimizer, scheduler, run_dir.last, steps, cfg.train.epochs)
    )
    atomic_write(run_dir.config, lambda f: f.write(to_yaml(cfg).encode()))
    # health.jsonl and steps.jsonl are appended to as the run goes: back to where last.pt stands (empty for a new run).
    run_dir.cut_logs(0 if resume_from is None else (state.epoch - 1) * steps + state.step)
    norm = start_norm or normalization_for(cfg.data.dataset, cfg.data.normalize, train_split)
    health = None
    if cfg.train.health:
        probes = probe_batch(val_split, train_split, norm, cfg.seed)
        health = HealthProbe(model, probes, cfg.model.activation, steps, cfg.train.health_probes_per_epoch)
    return Run(
        cfg=cfg,
        run_dir=run_dir,
        device=device,
        train_split=train_split,
        val_split=val_split,
        test_split=test_split,
        norm=norm,
        classes=classes,
        model=model,
        forward=torch.compile(model) if cfg.train.compile else model,
        loss=make_loss(cfg.train),
        optimizer=optimizer,
        scheduler=scheduler,
        generator=generator,
        loader=loader,
        steps=steps,
        guard=LossGuard(cfg.train.on_nan, device, steps, kept=run_dir.kept),
        state=state,
        amp=cfg.train.amp and device.type == "cuda",
        health=health,
        notes=notes,
    )


def train_epoch(run: Run, epoch: int, on_event: Callable[[Event], None], should_stop: Callable[[], bool]) -> None:
    """The optimizer steps of one epoch (or what is left of it on a resumed run); saves last.pt when asked to."""
    cfg, state, guard, steps = run.cfg, run.state, run.guard, run.steps
    run.model.train()
    batches = enter_epoch(state, run.loader, run.generator, run.device)
    loss_sum = state.loss_sum.to(run.device) if state.loss_sum is not None else torch.zeros((), device=run.device)
    correct = state.correct.to(run.device) if state.correct is not None else torch.zeros((), device=run.device, dtype=torch.int64)
    seen, skipped = state.seen, state.skipped
    background = -run.norm.mean / run.norm.std  # an empty pixel after normalisation, for augmentation's borders
    report_every = max(1, steps // PROGRESS_UPDATES_PER_EPOCH)
    save_every = cfg.train.save_every_steps
    t0 = time.perf_counter() - state.epoch_seconds
    logged = is_logged(cfg.train, epoch)  # health and step records only in the epochs end_epoch logs
    for step, (images, labels) in enumerate(batches, state.step + 1):
        global_step = (epoch - 1) * steps + step
        probing = logged and run.health is not None and run.health.due(epoch, step)
        reporting = step % report_every == 0 or step == steps
        lr = run.optimizer.param_groups[0]["lr"] if reporting else None  # the rate this step uses, read before the step
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.amp):
            logits = run.forward(augment(to_inputs(images, run.norm), cfg.data.augment, background))
        loss = run.loss(logits.float(), labels)
        run.optimizer.zero_grad(set_to_none=True)
        if guard.skip(loss):
            skipped += 1
        else:
            loss.backward()
            if probing:
                run.health.before_update()
            run.optimizer.step()
            loss_sum += loss.detach() * len(labels)
            correct += (logits.detach().argmax(1) == labels).sum()
            seen += len(labels)
        run.scheduler.step()
        guard.observe(loss, global_step)
        if probing:
            run.run_dir.append_health(run.health.record(epoch, step, finite(loss.item())))
        if reporting:
            guard.check()
            value = loss.item()
            if logged:
                run.run_dir.append_step(StepRecord(epoch, step, global_step, finite(value), lr))
            on_event(StepDone(epoch, step, steps, value, seen / (time.perf_counter() - t0)))
        stop = should_stop()
        if step < steps and (stop or (save_every and global_step % save_every == 0)):
            state.step, state.loss_sum, state.correct, state.seen, state.skipped = step, loss_sum, correct, seen, skipped
            state.epoch_seconds = time.perf_counter() - t0
            save_last(run, epoch - 1)
            if stop:
                raise TrainingInterrupted(str(run.run_dir.last), epoch, step)
    guard.check()
    guard.check_epoch(skipped, epoch)
    state.loss_sum, state.correct, state.seen, state.skipped = loss_sum, correct, seen, skipped
    state.epoch_seconds = time.perf_counter() - t0


def finite(x: float) -> float | None:
    """`x`, or None when it is nan or inf (JSON has no spelling for them)."""
    return x if math.isfinite(x) else None


def is_logged(train_cfg: TrainConfig, epoch: int) -> bool:
    """Whether `epoch` is validated and logged: every train.log_every-th epoch, and the last."""
    return epoch == train_cfg.epochs or epoch % train_cfg.log_every == 0


def end_epoch(run: Run, epoch: int, on_event: Callable[[Event], None]) -> bool:
    """Validate, keep the best model, write metrics and last.pt: the epoch is then committed. Returns whether
    last.pt was written.

    Only every train.log_every_epochs-th epoch (and the last) is validated and logged, and every
    save_every_epochs-th (and the last) saved: for a run of 10,000 four-example epochs this work would
    otherwise cost far more than the training. Which epochs these are depends on the config alone, so a
    resumed run logs and saves the same epochs.
    """
    state, train_cfg = run.state, run.cfg.train
    state.train_time += state.epoch_seconds
    state.samples += state.seen
    last = epoch == train_cfg.epochs
    if not is_logged(train_cfg, epoch):
        saved = epoch % train_cfg.save_every == 0
        state.next_epoch()
        if saved:
            save_last(run, epoch)
        return saved
    seconds, samples = since_last_row(state, epoch)
    val = (
        evaluate(run.model, run.val_split, run.norm, len(run.classes), run.cfg.train.eval_batch_size, run.amp)
        if len(run.val_split)
        else None
    )
    # Without a validation set the newest epoch counts as best.
    is_best = val is None or val.accuracy > state.best_acc
    metrics = EpochMetrics(
        epoch=epoch,
        train_loss=state.loss_sum.item() / max(state.seen, 1),
        val_loss=val.loss if val else None,
        val_accuracy=val.accuracy if val else None,
        lr=run.scheduler.get_last_lr()[0],
        seconds=seconds,
        samples_per_second=samples / seconds,
        skipped_steps=state.skipped,
        train_accuracy=state.correct.item() / state.seen if state.seen else None,
    )
    state.history.append(metrics)
    # best.pt and metrics.jsonl first, last.pt last: last.pt is the commit point a resumed run starts from.
    if is_best:
        state.best_acc, state.best_epoch = (val.accuracy if val else state.best_acc), epoch
        save_checkpoint(run.checkpoint(metrics.as_dict(), epoch), run.run_dir.best)
    run.run_dir.write_metrics(state.history)
    state.next_epoch()
    saved = last or epoch % train_cfg.save_every == 0
    if saved:
        save_last(run, epoch)
    on_event(EpochDone(metrics, is_best))
    return saved


def since_last_row(state: RunState, epoch: int) -> tuple[float, int]:
    """Training seconds and samples since the previous metrics row, so the rows' seconds add up to the run's
    even when only every Nth epoch has a row (train_loss is still the logged epoch's own)."""
    if epoch - (state.history[-1].epoch if state.history else 0) == 1:
        return state.epoch_seconds, state.seen
    logged_seconds = sum(row.seconds for row in state.history)
    logged_samples = sum(round(row.seconds * row.samples_per_second) for row in state.history)
    return state.train_time - logged_seconds, state.samples - logged_samples


def save_last(run: Run, epoch: int) -> None:
    """last.pt: the weights after `epoch` finished epochs plus where the run stands inside the next."""
    run.guard.check()  # never overwrite a good checkpoint with weights a NaN has reached
    metrics = run.state.history[-1].as_dict() if run.state.history else {}
    extra = {RESUME_KEY: snapshot(run.state, run.generator, run.device)}
    save_checkpoint(run.checkpoint(metrics, epoch, extra), run.run_dir.last)


def final_test(run: Run) -> TrainResult:
    """The test set is touched once, by the model validation picked; its figures are added to best.pt."""
    best = load_checkpoint(run.run_dir.best)
    run.model.load_state_dict(best["model_state"])
    test = evaluate(run.model, run.test_split, run.norm, len(run.classes), run.cfg.train.eval_batch_size, run.amp)
    best["metrics"].update(test_accuracy=test.accuracy, test_loss=test.loss)
    save_checkpoint(best, run.run_dir.best)
    state = run.state
    return TrainResult(
        checkpoint=str(run.run_dir.best),
        out_dir=str(run.run_dir),
        device=str(run.device),
        epochs=run.cfg.train.epochs,
        best_epoch=state.best_epoch,
        val_accuracy=state.best_acc if len(run.val_split) else None,
        test_accuracy=test.accuracy,
        test_loss=test.loss,
        train_seconds=state.train_time,
        samples_per_second=state.samples / state.train_time if state.train_time else 0.0,
        parameters=count_parameters(run.model),
    )
