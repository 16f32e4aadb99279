"""What a run commits: an epoch's record and best.pt, last.pt (where a resumed run starts), the final test and
result.json."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mnist_cli import record
from mnist_cli.checkpoint import save_checkpoint
from mnist_cli.config import TrainConfig
from mnist_cli.data.catalog import dataset_info
from mnist_cli.evaluate import evaluate
from mnist_cli.model import architecture
from mnist_cli.record import EpochMetrics, TestRecord
from mnist_cli.training.events import Event, TrainResult
from mnist_cli.training.state import RESUME_KEY

if TYPE_CHECKING:
    from mnist_cli.training.loop import Run


def is_logged(train_cfg: TrainConfig, epoch: int) -> bool:
    """Whether `epoch` is validated and logged: every train.log_every-th epoch, and the last."""
    return epoch == train_cfg.epochs or epoch % train_cfg.log_every == 0


def end_epoch(run: Run, epoch: int, on_event: Callable[[Event], None]) -> bool:
    """Validate, keep the best model, record the epoch and save last.pt (the commit point); returns whether it saved.

    Only every train.log_every-th epoch (and the last) is validated and logged, and every save_every-th saved: for
    10,000 four-example epochs that work would cost far more than the training. The config alone decides which.
    """
    state, train_cfg = run.state, run.cfg.train
    state.samples += state.seen
    if is_logged(train_cfg, epoch):
        val = len(run.val_split) and evaluate(
            run.model, run.val_split, run.norm, len(run.classes), train_cfg.eval_batch_size, run.amp
        )
        best_acc = max((m.val_accuracy for m in run.history if m.best and m.val_accuracy is not None), default=-1.0)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=state.loss_sum.item() / max(state.seen, 1),
            val_loss=val.loss if val else None,
            val_accuracy=val.accuracy if val else None,
            lr=run.scheduler.get_last_lr()[0],
            seconds=state.seconds,
            samples_per_second=state.samples / max(state.seconds, 1e-9),
            skipped_steps=state.skipped,
            train_accuracy=state.correct.item() / state.seen if state.seen else None,
            step=run.steps,
            global_step=epoch * run.steps,
            samples=state.samples,
            best=not val or val.accuracy > best_acc,  # without a validation split the newest epoch is kept
        )
        # best.pt and the record first, last.pt last: last.pt is the commit point a resumed run starts from.
        if metrics.best:
            best = run.checkpoint(metrics.as_dict(), epoch)
            save_checkpoint(best, run.run_dir.best)
            run.best_state = {k: v.clone() for k, v in best["model_state"].items()}  # on the CPU .cpu() is no copy
        run.history.append(metrics)
        run.log([metrics], on_event)
        state.seconds, state.samples = 0.0, 0
    state.next_epoch()
    saved = epoch == train_cfg.epochs or epoch % train_cfg.save_every == 0
    if saved:
        save_last(run)
    return saved


def save_last(run: Run) -> None:
    """last.pt: the weights where the run stands, with the position and running sums (RunState)."""
    run.guard.check()  # never overwrite a good checkpoint with weights a NaN has reached
    metrics = run.history[-1].as_dict() if run.history else {}
    finished = run.state.epoch - 1
    save_checkpoint(run.checkpoint(metrics, finished, {RESUME_KEY: run.state.snapshot()}), run.run_dir.last)


def final_test(run: Run, parameters: int, on_event: Callable[[Event], None]) -> TrainResult:
    """The test set is touched once, by the model validation picked; result.json sums the run up."""
    run.model.load_state_dict(run.best_state)
    test = evaluate(run.model, run.test_split, run.norm, len(run.classes), run.cfg.train.eval_batch_size, run.amp)
    best = max((m for m in run.history if m.best), key=lambda m: m.epoch)
    epochs, steps = run.cfg.train.epochs, run.steps
    run.log([TestRecord(best.epoch, steps, epochs * steps, test.accuracy, test.loss)], on_event)
    seconds = sum(m.seconds for m in run.history)
    result = TrainResult(
        test_accuracy=test.accuracy,
        test_loss=test.loss,
        best_epoch=best.epoch,
        val_accuracy=best.val_accuracy,
        epochs=epochs,
        parameters=parameters,
        train_seconds=seconds,
        samples_per_second=sum(m.samples for m in run.history) / seconds if seconds else 0.0,
        model=architecture(dataset_info(run.cfg.data.dataset).in_features, run.cfg.model.hidden_widths, len(run.classes)),
        dataset=run.cfg.data.dataset,
        classes=run.classes,
        node=record.this_node(),
        checkpoint=str(run.run_dir.best),
        out_dir=str(run.run_dir),
        device=str(run.device),
    )
    record.write_result(run.run_dir.result, result)
    return result
