"""Signals, threads, pipes and terminals, on real processes: Ctrl-C, SIGTERM and SIGHUP stop a run after a step and it
resumes bit-identical, a resume keeps the thread count its config recorded, and a display that loses its reader does
not kill the training."""

from __future__ import annotations

import contextlib
import os
import pty
import random
import select
import shlex
import signal
import subprocess
import time
from pathlib import Path

import torch
import yaml
from conftest import MNIST, Stderr, assert_identical, position, start, wait_for, write_config

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.config import load_config
from mnist_cli.record import read_result


def test_a_signal_saves_prints_the_resume_command_and_resumes_bit_identical(kill_setup, tmp_path):
    """Ctrl-C, SIGTERM and SIGHUP in turn stop one run at random moments; each printed command resumes it."""
    cfg, baseline = kill_setup
    out, rng = tmp_path / "stopped", random.Random(0)
    args = ["train", "-c", cfg, "--out", out]
    for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)):
        proc = start(args, tmp_path)
        err = Stderr(proc)
        assert wait_for(lambda e=err: any("training on" in line for line in e.lines))
        delay = rng.uniform(0.05, 0.3)  # the three stops fall within the ~1.5 s the run trains
        time.sleep(delay)
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == code, (signum, delay, err.text())
        text = err.text()
        assert "Traceback" not in text and "stopping after this step" in text, text
        [command] = [line.split("resume with: ", 1)[1] for line in text.splitlines() if "resume with: " in line]
        args = shlex.split(command)[1:]
        assert args[:2] == ["train", "--resume"] and Path(args[2]) == out / "last.pt"
        epoch, step = position(out / "last.pt")
        assert f"interrupted at epoch {epoch}, step {step}" in text
    r = subprocess.run([*MNIST, *args, "-q"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert_identical(baseline, out)


def test_a_second_ctrl_c_quits_at_once(tmp_path):
    cfg = write_config(tmp_path / "wide.yaml", model={"depth": 2, "width": 1024}, train={"epochs": 3, "save_every_steps": 1})
    out = tmp_path / "run"
    proc = start(["train", "-c", cfg, "--out", out], tmp_path)
    err = Stderr(proc)
    assert wait_for(lambda: (out / "last.pt").exists())
    proc.send_signal(signal.SIGINT)
    time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    text = err.text()
    assert "Traceback" not in text and ("interrupted at once" in text or "resume with:" in text), text
    load_checkpoint(out / "last.pt")


def test_sigterm_on_a_terminal_restores_the_cursor(tmp_path):
    cfg = write_config(tmp_path / "wide.yaml", model={"depth": 2, "width": 512}, train={"epochs": 3})
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    proc = subprocess.Popen(
        [*MNIST, "train", "-c", cfg, "--out", tmp_path / "run"], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path
    )
    os.close(slave)
    seen = b""

    def read_some(timeout: float) -> None:
        nonlocal seen
        ready, _, _ = select.select([master], [], [], timeout)
        if ready:
            with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
                seen += os.read(master, 65536)

    deadline = time.monotonic() + 60
    while b"\x1b[?25l" not in seen and time.monotonic() < deadline:  # the progress bar hid the cursor
        read_some(0.1)
    proc.send_signal(signal.SIGTERM)
    while proc.poll() is None and time.monotonic() < deadline:
        read_some(0.1)
    read_some(0.5)
    os.close(master)
    assert proc.wait(timeout=30) == 143, seen[-2000:]
    assert b"\x1b[?25l" in seen and seen.rfind(b"\x1b[?25h") > seen.rfind(b"\x1b[?25l"), seen[-500:]
    assert b"resume with:" in seen and b"Traceback" not in seen


def test_a_resume_under_another_thread_count_uses_the_recorded_one(kill_setup, tmp_path):
    raw = load_config(kill_setup[0]).model_dump(mode="json")
    raw["train"]["threads"] = None  # unset (torch's default), as most configs are: only the environment decides
    raw["train"]["epochs"] = 1  # the cut comes at the first save, step 5 of 87
    unpinned = tmp_path / "unpinned.yaml"
    unpinned.write_text(yaml.safe_dump(raw))
    two, one = ({**os.environ, "OMP_NUM_THREADS": n} for n in ("2", "1"))
    full = subprocess.run([*MNIST, "train", "-c", unpinned, "--out", tmp_path / "full", "-q"], env=two, capture_output=True)
    assert full.returncode == 0, full.stderr
    proc = subprocess.Popen([*MNIST, "train", "-c", unpinned, "--out", tmp_path / "cut", "-q"], env=two, stderr=subprocess.PIPE)
    assert wait_for(lambda: (tmp_path / "cut" / "last.pt").exists())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["config"]["train"]["threads"] == 2
    assert load_config(tmp_path / "cut" / "config.yaml").train.threads == 2
    r = subprocess.run([*MNIST, "train", "--resume", tmp_path / "cut" / "last.pt", "-q"], env=one, capture_output=True)
    assert r.returncode == 0, r.stderr
    assert_identical(tmp_path / "full", tmp_path / "cut")


def test_a_closed_stdout_does_not_fail_a_finished_run(tmp_path):
    cfg = write_config(tmp_path / "tiny.yaml", train={"epochs": 1})
    r = subprocess.run(
        [*MNIST, "train", "-c", cfg, "--out", tmp_path / "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.close(1),  # `>&-`: Python starts with no sys.stdout
        cwd=tmp_path,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert read_result(tmp_path / "run").epochs == 1


def test_a_progress_reader_that_goes_away_does_not_stop_training(tmp_path):
    cfg = write_config(tmp_path / "tiny.yaml", train={"epochs": 3})
    script = f"set -o pipefail; {shlex.join(map(str, [*MNIST, 'train', '-c', cfg, '--out', tmp_path / 'run']))} 2>&1 | head -2"
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert len(r.stdout.splitlines()) == 2
    # The run finished: every epoch trained and the final test written, whatever the reader saw.
    assert position(tmp_path / "run" / "last.pt") == (4, 0)
    assert read_result(tmp_path / "run").epochs == 3
    # 141 (128 + SIGPIPE) only because the result could not be printed, like any program whose reader left; never 1.
    assert r.returncode == 141, r
