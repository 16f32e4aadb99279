"""The training run in phases that read top to bottom: preflight, set-up, epochs (train, then end the epoch), final test.

The batch order of an epoch follows from (seed, epoch) and a step's random draws from (seed, global step), so last.pt
holds only weights, optimizer, schedule, position and running sums (training/state.py). What the run measures goes to
one append-only events.jsonl, the same objects `on_event` receives; result.json sums the run up.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mnist_cli import record
from mnist_cli.augment import augment
from mnist_cli.checkpoint import build_checkpoint, config_from_checkpoint, load_checkpoint
from mnist_cli.config import Config, data_root, to_yaml
from mnist_cli.data.datasets import Split, class_names, load_dataset, normalization_for, split_train_val
from mnist_cli.data.loader import batch_sizes, shuffled_batches, to_inputs
from mnist_cli.devices import default_threads, resolve_device
from mnist_cli.disk import atomic_write
from mnist_cli.errors import CheckpointError, TrainingInterrupted
from mnist_cli.losses import make_loss
from mnist_cli.model import MLP, build_model, parameter_count
from mnist_cli.optim import make_optimizer, make_scheduler, step_function
from mnist_cli.record import EpochMetrics, StepRecord, TestRecord
from mnist_cli.tracking import MlflowTarget, Tracker
from mnist_cli.training.backprop import Autograd, Backprop
from mnist_cli.training.backprop import applies as backprop_applies
from mnist_cli.training.events import DryRun, Event, RunStarted, StepDone, TrainResult
from mnist_cli.training.guard import LossGuard
from mnist_cli.training.init_from import initial_weights, matching_weights
from mnist_cli.training.plan import config_differences
from mnist_cli.training.preflight import check_resources
from mnist_cli.training.probe import HealthProbe, probe_batch
from mnist_cli.training.results import end_epoch, final_test, is_logged, save_last
from mnist_cli.training.rundir import RunDir
from mnist_cli.training.state import RunState, derived_seed, isolated_process_state, restore, step_generator

PROGRESS_UPDATES_PER_EPOCH = 50  # step events per epoch; each reads the loss (a host sync on CUDA)


class Run:
    """The set-up of a run, which the phases below share: data on the device, a seeded model, optimizer and schedule;
    a resumed run's state and record put back."""

    def __init__(self, cfg: Config, run_dir: RunDir, device: torch.device, splits: tuple[Split, ...], resume_from: Any):
        self.cfg, self.run_dir, self.device = cfg, run_dir, device
        # The whole dataset lives on the training device as uint8; batches are gathers from it.
        self.train_split, self.val_split, self.test_split = (s.to(device) for s in splits)
        self.classes = class_names(cfg.data.dataset, cfg.data.root)
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, self.train_split.images[0].numel(), len(self.classes))
        # Fine-tuning (issue 21): a new run starts from train.init_from's weights; a resumed one from its last.pt.
        self.notes, start_norm = ((), None)
        if cfg.train.init_from:
            self.notes, start_norm = initial_weights(model, cfg.train.init_from, self.classes, resume_from)
        self.model: MLP = model.to(device)
        self.amp = cfg.train.amp and device.type == "cuda"  # bf16 autocast
        # A disabled autocast still costs a few us a step; at batch 15 a whole step is a few hundred
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()
        if backprop_applies(cfg):  # autograd's work without its engine: faster
            self.gradients: Backprop | Autograd = Backprop(self.model, cfg.model.activation)
        else:
            forward = torch.compile(self.model) if cfg.train.compile else self.model  # compiled: the same weights
            self.gradients = Autograd(forward, make_loss(cfg.train), self.autocast)
        self.optimizer = make_optimizer(self.model, cfg.train)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.steps = len(batch_sizes(len(self.train_split), cfg.train.batch_size))  # per epoch
        self.scheduler = make_scheduler(self.optimizer, cfg.train, self.steps)
        # optimizer.step as the schedule wrapped it (it checks the order of the two), or the fused kernel called directly
        self.update = step_function(self.optimizer)
        self.state, records, self.best_state = RunState(), [], None  # best_state: best.pt's weights, for the final test
        if resume_from is not None:
            self.state = restore(
                resume_from, self.model, self.optimizer, self.scheduler, run_dir.last, self.steps, cfg.train.epochs
            )
            records, self.best_state = resumed_record(run_dir, resume_from, (self.state.epoch - 1) * self.steps + self.state.step)
        # The event log first: a folder holding one holds a run (RunDir.refuse_to_replace).
        record.write_events(run_dir.events, records)
        atomic_write(run_dir.config, lambda f: f.write(to_yaml(cfg).encode()))
        self.history = [r for r in records if isinstance(r, EpochMetrics)]  # the epoch records so far
        self.norm = start_norm or normalization_for(cfg.data.dataset, cfg.data.normalize, self.train_split)
        self.health = None  # a HealthProbe with train.health on
        if cfg.train.health:
            probes = probe_batch(self.val_split, self.train_split, self.norm, cfg.seed)
            self.health = HealthProbe(self.model, probes, cfg.model.activation, self.steps, cfg.train.health_probes_per_epoch)
        self.guard = LossGuard(cfg.train.on_nan, device, self.steps, kept=run_dir.kept)
        # A step that draws random numbers (dropout, augmentation) seeds them from its global step.
        self.draws = cfg.model.dropout > 0 or cfg.data.augment.enabled

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

    def log(self, records: list[record.Record], on_event: Callable[[Event], None]) -> None:
        record.append(self.run_dir.events, records)
        for r in records:
            on_event(r)


def train(
    cfg: Config,
    out_dir: Path | RunDir,
    on_event: Callable[[Event], None] = lambda event: None,
    *,
    resume_from: dict[str, Any] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    dry_run: bool = False,
    overwrite: bool = False,
    mlflow: MlflowTarget | None = None,
) -> TrainResult | DryRun:
    """Train the configured MLP into `out_dir`: config.yaml, events.jsonl, best.pt, last.pt, result.json.

    `resume_from`: a loaded last.pt to continue exactly; `should_stop`, polled after every step, saves last.pt and
    raises TrainingInterrupted; `dry_run` returns after the preflight checks. A folder holding another run is refused
    unless `overwrite`. Thread count and RNG states are put back on return; records also go to TensorBoard and `mlflow`.
    """
    run_dir = out_dir if isinstance(out_dir, RunDir) else RunDir(Path(out_dir))
    device, splits, parameters = preflight(cfg, run_dir, resume_from, overwrite=overwrite, dry_run=dry_run)
    if dry_run:
        return DryRun(str(run_dir), str(device), parameters)
    if cfg.train.threads is None:  # the count changes a result's last bits: the run's config records it
        threads = default_threads(cfg.train.batch_size, parameters)
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"threads": threads})})
    with run_dir.locked(), isolated_process_state(device, cfg.train.threads):
        if resume_from is None:
            run_dir.remove_previous_run()  # under the lock: never another live run's files
        run = Run(cfg, run_dir, device, splits, resume_from)
        resumed_at = (run.state.epoch - 1) * run.steps + run.state.step
        tracker = on_event = Tracker(run.cfg, run_dir, run.model, resumed_at, mlflow, on_event)
        try:
            splits_n = len(run.train_split), len(run.val_split), len(run.test_split)
            on_event(RunStarted(str(device), parameters, *splits_n, run.steps, cfg.train.epochs, str(run_dir), run.notes))
            for epoch in range(run.state.epoch, cfg.train.epochs + 1):
                train_epoch(run, epoch, on_event, should_stop)
                saved = end_epoch(run, epoch, on_event)
                if should_stop() and epoch < cfg.train.epochs:
                    if not saved:
                        save_last(run)
                    raise TrainingInterrupted(str(run_dir.last), epoch + 1, 0)
            result = final_test(run, parameters, on_event)
        except BaseException as e:
            tracker.close(e)
            raise
        tracker.close(None)
        return result


def preflight(
    cfg: Config, run_dir: RunDir, resume_from: dict[str, Any] | None, overwrite: bool, dry_run: bool
) -> tuple[torch.device, tuple[Split, Split, Split], int]:
    """The device, (train, val, test) splits and parameter count, all checked before anything is written or downloaded."""
    device = resolve_device(cfg.train.device)
    data = cfg.data
    train_full, test = load_dataset(data.dataset, data_root(data), not dry_run, data.test_root, data.skip_bad_files)
    run_dir.prepare(create=False)
    if resume_from is None:
        run_dir.refuse_to_replace(overwrite)
    classes = class_names(cfg.data.dataset, cfg.data.root)
    stratify = classes if cfg.data.dataset == "folder" else None
    train_split, val_split = split_train_val(train_full, cfg.data.val_size, cfg.seed, stratify)
    in_features = train_full.images[0].numel()
    parameters = parameter_count(cfg.model, in_features, len(classes))
    if cfg.train.init_from and resume_from is None:  # a checkpoint that cannot start this run is refused before any write
        with torch.device("meta"):  # shapes only, nothing allocated
            shapes = build_model(cfg.model, in_features, len(classes))
        matching_weights(shapes, cfg.train.init_from, classes)
    check_resources(cfg, run_dir, device, parameters, in_features, train_full.images.nbytes + test.images.nbytes)
    return device, (train_split, val_split, test), parameters


def resumed_record(run_dir: RunDir, resume_from: dict[str, Any], at: int) -> tuple[list[record.Record], Any]:
    """The event log up to global step `at` (last.pt's), and best.pt's weights once an epoch was best; refused when
    either is missing or not this run's."""
    fix = "restore it from a backup, or start a new run with --overwrite"
    if at and not run_dir.events.exists():
        raise CheckpointError(f"cannot resume: the run's record {run_dir.events} is missing; {fix}")
    records = [r for r in record.read_events(run_dir.events) if r.global_step <= at and not isinstance(r, TestRecord)]
    best_epoch = max((r.epoch for r in records if isinstance(r, EpochMetrics) and r.best), default=0)
    if not best_epoch:
        return records, None  # no epoch has been validated: the next one writes best.pt
    try:
        best = load_checkpoint(run_dir.best)
    except CheckpointError as e:
        raise CheckpointError(f"cannot resume: the run's best model is needed for its final test, but {e}; {fix}") from None
    differ = config_differences(config_from_checkpoint(best, run_dir.best), config_from_checkpoint(resume_from, run_dir.last))
    # best.pt may be newer than the log: a run killed between saving it and saving last.pt redoes that epoch.
    if not isinstance(best.get("epoch"), int) or best["epoch"] < best_epoch or differ:
        raise CheckpointError(
            f"cannot resume: {run_dir.best} is not this run's best model (epoch {best.get('epoch')!r}, "
            f"the run's best is epoch {best_epoch}{', another config' if differ else ''}); {fix}"
        )
    return records, best["model_state"]


def train_epoch(run: Run, epoch: int, on_event: Callable[[Event], None], should_stop: Callable[[], bool]) -> None:
    """The optimizer steps of one epoch (or what is left of it on a resumed run); saves last.pt when asked to."""
    cfg, state, guard, steps = run.cfg, run.state, run.guard, run.steps
    run.model.train()
    batches = shuffled_batches(len(run.train_split), cfg.train.batch_size, derived_seed(cfg.seed, "epoch", epoch), run.device)
    zero, seen_before = torch.zeros((), device=run.device), state.seen
    state.loss_sum = zero.clone() if state.loss_sum is None else state.loss_sum.to(run.device)
    state.correct = zero.long() if state.correct is None else state.correct.to(run.device)
    background = -run.norm.mean / run.norm.std  # an empty pixel after normalisation, for augmentation's borders
    report_every = max(1, steps // PROGRESS_UPDATES_PER_EPOCH)
    save_every = cfg.train.save_every_steps
    generator = step_generator(run.device)
    t0, seconds_before = time.perf_counter(), state.seconds
    logged = is_logged(cfg.train, epoch)  # health and step records only in the epochs end_epoch logs
    for step in range(state.step + 1, steps + 1):
        index = batches[step - 1]
        # index_select, not images[index]: the same gather at a third of the cost (~54 -> 18 us at batch 64, 1 thread)
        images, labels = run.train_split.images.index_select(0, index), run.train_split.labels.index_select(0, index)
        global_step = (epoch - 1) * steps + step
        if run.draws:
            (generator or torch).manual_seed(derived_seed(cfg.seed, "step", global_step))
        probing = logged and run.health is not None and run.health.due(epoch, step)
        reporting = step % report_every == 0 or step == steps
        lr = run.optimizer.param_groups[0]["lr"] if reporting else None  # the rate this step uses, read before the step
        with run.autocast:
            inputs = augment(to_inputs(images, run.norm), cfg.data.augment, background)
        logits, loss = run.gradients.loss(inputs, labels)
        for p in run.params:  # zero_grad(set_to_none=True) without its profiler scope: ~15 us a step
            p.grad = None
        if guard.skip(loss):
            state.skipped += 1
        else:
            run.gradients.backward()
            if probing:
                run.health.before_update()
            run.update()
            state.loss_sum += loss.detach() * len(labels)
            state.correct += (logits.detach().argmax(1) == labels).sum()
            state.seen += len(labels)
        run.scheduler.step()
        guard.observe(loss, global_step)
        if probing:
            run.log([run.health.record(epoch, step, finite(loss.item()))], on_event)
        if reporting:
            guard.check()
            step_record = StepRecord(epoch, step, global_step, finite(loss.item()), lr)
            if logged:
                record.append(run.run_dir.events, [step_record])
            on_event(StepDone(step_record, steps, (state.seen - seen_before) / (time.perf_counter() - t0), run.model))
        stop = should_stop()
        if step < steps and (stop or (save_every and global_step % save_every == 0)):
            state.step, state.seconds = step, seconds_before + time.perf_counter() - t0
            save_last(run)
            if stop:
                raise TrainingInterrupted(str(run.run_dir.last), epoch, step)
    guard.check()
    guard.check_epoch(state.skipped, epoch)
    state.seconds = seconds_before + time.perf_counter() - t0


def finite(x: float) -> float | None:
    """`x`, or None for nan and inf (JSON has no spelling for them)."""
    return x if math.isfinite(x) else None
