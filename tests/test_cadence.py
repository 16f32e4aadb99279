"""Tiny, long runs: only every log_every_epochs-th epoch is validated and logged, and resume stays exact."""

from __future__ import annotations

import pytest
from conftest import XOR, assert_identical, epoch_records, write_config

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.config import load_config
from mnist_cli.errors import TrainingInterrupted
from mnist_cli.record import EpochMetrics
from mnist_cli.training.loop import train


def epochs_logged(run) -> list[int]:
    return [m.epoch for m in epoch_records(run)]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """XOR for 300 epochs, uninterrupted, saving last.pt every 25 epochs: (config, run, epochs reported, result)."""
    folder = tmp_path_factory.mktemp("whole")
    cfg = load_config(write_config(folder / "x.yaml", **XOR), ["train.save_every_epochs=25"])
    done = []
    result = train(cfg, folder / "whole", lambda e: done.append(e.epoch) if isinstance(e, EpochMetrics) else None)
    return cfg, folder / "whole", done, result


def test_automatic_cadence_logs_at_most_about_100_epochs(whole):
    assert load_config(None, ["train.epochs=100"]).train.log_every == 1  # every MNIST config: each epoch
    assert load_config(None, ["train.epochs=101"]).train.log_every == 2
    _, run, done, result = whole
    assert epochs_logged(run) == done == list(range(3, 301, 3))
    # Each record's seconds and samples cover the epochs since the record before, so they add up to the run's.
    rows = epoch_records(run)
    assert sum(r.seconds for r in rows) == pytest.approx(result.train_seconds)
    assert sum(r.samples for r in rows) == 300 * 4


def test_explicit_cadence_and_the_last_epoch_always_logged(tmp_path):
    cfg = load_config(write_config(tmp_path / "x.yaml", **XOR), ["train.epochs=25", "train.log_every_epochs=10"])
    train(cfg, tmp_path / "run")
    assert epochs_logged(tmp_path / "run") == [10, 20, 25]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["resume"]["epoch"] == 26


@pytest.mark.parametrize("stop_at", [37, 299])
def test_a_tiny_long_run_stopped_between_saves_resumes_bit_identical(stop_at, whole, tmp_path):
    cfg, run = whole[:2]
    polls = iter(range(1, 10**6))
    with pytest.raises(TrainingInterrupted) as stopped:
        # One poll per step and one after each epoch: stop once `stop_at` epochs are done.
        train(cfg, tmp_path / "cut", should_stop=lambda: next(polls) >= 2 * stop_at)
    assert stopped.value.epoch == stop_at + 1
    train(cfg, tmp_path / "cut", resume_from=load_checkpoint(tmp_path / "cut" / "last.pt"))
    assert_identical(run, tmp_path / "cut")


def test_a_crash_between_saves_loses_at_most_save_every_epochs(tmp_path):
    cfg = load_config(write_config(tmp_path / "x.yaml", **XOR), ["train.save_every_epochs=25"])

    def crash(event):
        if isinstance(event, EpochMetrics) and event.epoch == 69:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        train(cfg, tmp_path / "run", crash)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["resume"]["epoch"] == 51
