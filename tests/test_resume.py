"""Exact resume: runs stopped, SIGKILLed (also in the middle of a save) and Ctrl-C'd end bit-identical to unbroken runs."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import MNIST, assert_clean_error, assert_identical, invoke, mtime, position, start, wait_for, write_config

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.config import load_config
from mnist_cli.errors import TrainingInterrupted
from mnist_cli.record import read_run_records
from mnist_cli.training import backprop
from mnist_cli.training.events import StepDone
from mnist_cli.training.loop import train


@pytest.mark.parametrize("plain", [False, True])  # autograd (dropout, batch norm); by hand (training/backprop.py)
def test_stopping_anywhere_and_resuming_is_bit_identical(plain, hard_run, tmp_path):
    # 16 steps per epoch. Stops mid-epoch, on the last step of an epoch (a boundary), and just after a boundary.
    by_hand = ["model.dropout=0", "model.norm=none"] if plain else []
    cfg = load_config(hard_run / "config.yaml", ["train.save_every_steps=5", *by_hand])
    assert backprop.applies(cfg) == plain
    unbroken = tmp_path / "unbroken" if plain else hard_run
    if plain:
        train(cfg, unbroken)
    run, stops = tmp_path / "stopped", []
    for stop_after in (7, 9, 5):
        polls = iter(range(1, 1000))
        try:
            resume = load_checkpoint(run / "last.pt") if (run / "last.pt").exists() else None
            # Like Ctrl-C: once asked, the flag stays set.
            train(cfg, run, resume_from=resume, should_stop=lambda n=stop_after, p=polls: next(p) >= n)
        except TrainingInterrupted as e:
            stops.append((e.epoch, e.step))
    assert stops == [(1, 7), (2, 0), (2, 5)]
    train(cfg, run, resume_from=load_checkpoint(run / "last.pt"))
    assert_identical(unbroken, run)


def test_save_every_steps_bounds_what_a_crash_loses(hard_run, tmp_path):
    def crash(event):
        if isinstance(event, StepDone) and event.record.step == 11:  # dies between saves, like a kill
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        train(load_config(hard_run / "config.yaml", ["train.save_every_steps=4"]), tmp_path / "run", crash)
    assert position(tmp_path / "run" / "last.pt") == (1, 8)


def test_resume_auto_continues_or_starts_fresh(hard_run, tmp_path):
    out = tmp_path / "auto"
    r = invoke("train", "-c", hard_run / "config.yaml", "--out", out, "--resume", "auto", "-q")
    assert r.exit_code == 0 and "no last.pt in" in r.stderr, r.output
    assert_identical(hard_run, out)
    r = invoke("train", "-c", hard_run / "config.yaml", "--out", out, "--resume", "auto", "-q")
    assert r.exit_code == 0 and "resuming from" in r.stderr, r.output


def test_resume_refuses_a_different_config_best_pt_and_an_earlier_releases_run(hard_run, tmp_path):
    r = invoke("train", "--resume", hard_run / "last.pt", "--set", "train.lr=0.5")
    assert r.exit_code == 2 and "train.lr: 0.003 in the checkpoint, 0.5 now" in r.stderr, r.output
    assert_clean_error(invoke("train", "--resume", hard_run / "best.pt"), "holds no resume state")
    assert_clean_error(invoke("train", "--resume", hard_run / "nothing.pt"), "no such checkpoint")
    # Its last.pt captured RNG states, which this release derives: continuing it would not be exact.
    (tmp_path / "old").mkdir()
    shutil.copy(Path(__file__).parent / "fixtures" / "format2-unfinished-last.pt", tmp_path / "old" / "last.pt")
    assert_clean_error(invoke("train", "--resume", tmp_path / "old" / "last.pt"), "earlier mnist-cli", "--overwrite")
    assert_clean_error(invoke("train", "--resume", "auto", "--out", tmp_path / "old"), "earlier mnist-cli", "--overwrite")


# --- real processes ---------------------------------------------------------------------------------------------


def test_sigkill_at_random_points_then_resume_is_bit_identical(kill_setup, tmp_path):
    cfg, baseline = kill_setup
    out, rng, log = tmp_path / "killed", random.Random(4), []
    for _ in range(4):
        proc = start(["train", "-c", cfg, "--out", out, "--resume", "auto", "-q"], tmp_path)
        started = mtime(out / "last.pt")
        # Wait for a save newer than the one resumed from: training is under way. Then kill at a random moment.
        assert wait_for(lambda p=proc, s=started: p.poll() is not None or mtime(out / "last.pt") > s)
        delay = rng.uniform(0.0, 0.3)  # the whole run trains for about a second
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.append((round(delay, 3), proc.returncode, position(out / "last.pt")))
    r = subprocess.run([*MNIST, "train", "-c", cfg, "--out", out, "--resume", "auto", "-q"], cwd=tmp_path, capture_output=True)
    assert r.returncode == 0, r.stderr
    assert sum(rc == -signal.SIGKILL for _, rc, _ in log) >= 3, log  # really killed, not finished first
    assert_identical(baseline, out)


def test_sigkill_during_saves_leaves_the_previous_file_intact(tmp_path):
    # A wide model saved every step: most of the time goes to writing checkpoints.
    cfg = write_config(tmp_path / "wide.yaml", model={"depth": 2, "width": 1024}, train={"epochs": 1, "save_every_steps": 1})
    out, caught = tmp_path / "run", []
    for _ in range(3):
        before = mtime(out / "last.pt")
        proc = start(["train", "-c", cfg, "--out", out, "--resume", "auto", "-q"], tmp_path)
        # Once this process has saved a last.pt, kill it the moment it writes the next: mid-save, before the rename.
        assert wait_for(lambda p=proc, b=before: p.poll() is not None or mtime(out / "last.pt") > b)
        assert wait_for(lambda p=proc: p.poll() is not None or any(out.glob(".last.pt.*.tmp")), every=0.0005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        caught.append(bool(list(out.glob(".last.pt.*.tmp"))))
        load_checkpoint(out / "last.pt")  # loads and passes its digest: the previous good file
        assert mtime(out / "last.pt") > before
        read_run_records(out)  # whole rows only: each line parses
    assert sum(caught) >= 2, caught  # most kills really landed while a temporary file was being written
    r = subprocess.run([*MNIST, "train", "-c", cfg, "--out", out, "--resume", "auto", "-q"], cwd=tmp_path, capture_output=True)
    assert r.returncode == 0, r.stderr
    assert not list(out.glob(".*.tmp"))  # the next run cleared the leftovers
    train(load_config(cfg, ["train.save_every_steps=0"]), tmp_path / "baseline")  # saves change nothing but the time
    assert_identical(tmp_path / "baseline", out)
