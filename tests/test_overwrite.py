"""`--overwrite` leaves nothing of the old run that the new one could be mistaken for, even when Ctrl-C stops it early."""

from __future__ import annotations

import signal
import time

from conftest import Stderr, start, wait_for, write_config, write_mnist

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.config import load_config, to_yaml
from mnist_cli.training.loop import train
from mnist_cli.training.rundir import RUN_FILES, RunDir


def test_remove_previous_run_removes_every_run_file_and_nothing_else(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    for name in RUN_FILES:
        (run.path / name).write_text("old")
    (run.path / "notes.txt").write_text("mine")
    run.remove_previous_run()
    assert sorted(p.name for p in run.path.iterdir()) == ["notes.txt"]


def test_an_overwriting_run_stopped_by_ctrl_c_leaves_only_its_own_files(tmp_path):
    data = write_mnist(tmp_path / "data", n_train=3000)  # ~90 steps per epoch: Ctrl-C lands inside epoch 1
    old_cfg = write_config(tmp_path / "old.yaml", data={"val_size": 200, "root": str(data)})
    new_cfg = write_config(tmp_path / "new.yaml", data={"val_size": 200, "root": str(data)}, model={"depth": 2, "width": 1024})
    out = tmp_path / "run"
    train(load_config(old_cfg), out)  # a finished run: best.pt, last.pt, config.yaml, events.jsonl, result.json
    for name in ("metrics.jsonl", "health.jsonl", "steps.jsonl"):  # and the logs of the release before
        (out / name).write_text("{}\n")
    assert {p.name for p in out.iterdir()} >= set(RUN_FILES)

    started = time.time_ns()
    proc = start(["train", "-c", new_cfg, "--out", out, "--overwrite"], tmp_path)
    err = Stderr(proc)
    assert wait_for(lambda: proc.poll() is not None or any("training on" in line for line in err.lines))
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, err.text()

    new = load_config(new_cfg)
    assert (out / "config.yaml").read_text() == to_yaml(new)
    assert load_checkpoint(out / "last.pt")["resume"]["epoch"] == 1, "Ctrl-C landed after epoch 1: make the epoch longer"
    # Stopped inside its first epoch, the new run has no best.pt and no result yet; the old run's must be gone,
    # or `mnist eval run/best.pt` would silently evaluate the old model.
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    [tensorboard] = [n for n in names if n.startswith("events.out.tfevents.")]  # the new run's: the old one's is gone
    assert [n for n in names if n != tensorboard] == ["config.yaml", "events.jsonl", "last.pt"], names
    assert all((out / name).stat().st_mtime_ns >= started for name in names), names
    assert load_checkpoint(out / "last.pt")["config"]["model"]["width"] == 1024
