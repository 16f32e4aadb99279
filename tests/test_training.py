"""A training run: numerical faults, preflight checks, the run folder, and runs that leave the process as they found it."""

from __future__ import annotations

import errno
import random
import shutil
import subprocess

import pytest
import torch
from conftest import MNIST, assert_clean_error, assert_identical, epoch_records, invoke, without_clocks, write_config

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.training.rundir import RunDir


def finite_weights(path) -> bool:
    return all(torch.isfinite(v).all() for v in load_checkpoint(path)["model_state"].values())


def test_a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    # SGD at lr 10 really diverges on the synthetic data: epoch 1 ends finite, the loss reaches inf in epoch 2.
    cfg = write_config(tmp_path / "hot.yaml", train={"epochs": 3, "optimizer": "sgd", "lr": 10.0})
    r = invoke("train", "-c", cfg, "--out", tmp_path / "run", "-q")
    assert_clean_error(r, "loss became", "at epoch 2, step", "last good checkpoint")
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["resume"]["epoch"] == 2 and last["resume"]["step"] == 0 and finite_weights(tmp_path / "run" / "last.pt")


@pytest.mark.parametrize("smoothing", [0.0, 0.1])  # the step by hand (training/backprop.py), and by autograd
def test_on_nan_skip_drops_the_bad_batches_and_finishes(smoothing, tmp_path, monkeypatch):
    import mnist_cli.training.loop as loop  # a training step's images come from its to_inputs

    real, calls = loop.to_inputs, iter(range(10_000))
    poisoned = lambda *a, **kw: real(*a, **kw) * (float("nan") if next(calls) in (3, 20) else 1)  # noqa: E731
    monkeypatch.setattr(loop, "to_inputs", poisoned)
    cfg = write_config(tmp_path / "c.yaml", train={"epochs": 2, "on_nan": "skip", "label_smoothing": smoothing})
    r = invoke("train", "-c", cfg, "--out", tmp_path / "run", "-q", "--json")
    assert r.exit_code == 0, r.output
    assert [m.skipped_steps for m in epoch_records(tmp_path / "run")] == [1, 1] and finite_weights(tmp_path / "run" / "best.pt")


def test_preflight_refuses_what_cannot_work_before_writing(tmp_path, tiny_config, monkeypatch):
    import mnist_cli.training.preflight as preflight

    (tmp_path / "file").write_text("")
    assert_clean_error(invoke("train", "-c", tiny_config, "--out", tmp_path / "file" / "run"), "cannot be created or written")
    # 64 layers of 65536: about 275 billion parameters; building it would take down the machine.
    big = ("--set", "model.depth=64", "--set", "model.width=65536")
    assert_clean_error(invoke("train", "-c", tiny_config, *big, "--out", tmp_path / "r"), "needs about", "lower model.width")
    (tmp_path / "run").mkdir()
    with RunDir(tmp_path / "run").locked():
        assert_clean_error(invoke("train", "-c", tiny_config, "--out", tmp_path / "run"), "another `mnist train` is writing")
    r = invoke("train", "-c", tiny_config, "--out", tmp_path / "dry", "--dry-run")
    assert r.exit_code == 0 and "preflight passed" in r.stdout and not (tmp_path / "dry" / "last.pt").exists(), r.output
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 5000, 5000))
    assert_clean_error(invoke("train", "-c", tiny_config, "--out", tmp_path / "disk"), "not enough free space", "4.9 KB is free")
    assert not (tmp_path / "disk" / "last.pt").exists()


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_previous_file(tmp_path, tiny_config, monkeypatch):
    import mnist_cli.disk as disk

    args = ("train", "-c", tiny_config, "--out", tmp_path / "run", "-q", "--set", "train.epochs=1")
    assert invoke(*args).exit_code == 0
    before = (tmp_path / "run" / "last.pt").read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(disk.os, "fsync", full)
    # --resume, not --overwrite: an overwriting run removes the old run's files before its first save (by design).
    r = invoke(*args, "--resume", "auto")
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    error = r.stderr.strip().splitlines()[-1]  # after the "resuming from" line
    assert "No space left on device" in error and "intact" in error, r.stderr
    assert (tmp_path / "run" / "last.pt").read_bytes() == before and not list((tmp_path / "run").glob(".*.tmp"))


def test_same_seed_gives_identical_runs_and_a_new_run_does_not_silently_replace_one(tiny_config, tmp_path, finished_run):
    # The same config as conftest's finished run (trained by the library call): the command trains it again, bit for bit.
    assert invoke("train", "-c", tiny_config, "--out", tmp_path / "a", "-q").exit_code == 0
    assert without_clocks(tmp_path / "a") != []
    assert_identical(finished_run, tmp_path / "a")
    before = (tmp_path / "a" / "best.pt").read_bytes()
    r = invoke("train", "-c", tiny_config, "--out", tmp_path / "a", "-q", "--set", "model.width=8")
    assert r.exit_code == 2, r.output
    assert all(s in r.stderr for s in ("already holds a run (last.pt)", "--resume auto", "--overwrite")), r.stderr
    assert (tmp_path / "a" / "best.pt").read_bytes() == before
    r = invoke("train", "-c", tiny_config, "--out", tmp_path / "a", "-q", "--set", "model.width=8", "--overwrite", "--json")
    assert r.exit_code == 0, r.output
    assert torch.load(tmp_path / "a" / "best.pt", weights_only=True)["config"]["model"]["width"] == 8


def test_two_runs_in_one_process_match_two_separate_commands(tmp_path):
    """A library caller (a sweep worker) trains runs one after another; each must be what `mnist train` gives alone."""
    from mnist_cli.config import load_config
    from mnist_cli.training.loop import train

    # Dropout and augmentation draw from torch's RNG; the threads differ from torch's default.
    a = write_config(tmp_path / "a.yaml", model={"depth": 2, "width": 16, "dropout": 0.2}, data={"augment": {"rotate": 10}})
    b = write_config(tmp_path / "b.yaml", seed=3, model={"depth": 1, "width": 24}, train={"threads": 2, "optimizer": "sgd"})
    # The two commands run meanwhile, in processes of their own.
    command = lambda n, c: subprocess.Popen([*MNIST, "train", "-c", c, "--out", tmp_path / n, "-q"], stderr=subprocess.PIPE)  # noqa: E731
    commands = {"a": command("command-a", a), "b": command("command-b", b)}
    threads, torch_rng, python_rng = torch.get_num_threads(), torch.get_rng_state(), random.getstate()
    for name, cfg in (("a", a), ("b", b)):
        train(load_config(cfg), tmp_path / f"library-{name}")
    # The process is as it was: a later caller's results cannot depend on what ran before.
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), torch_rng) and random.getstate() == python_rng
    for name, proc in commands.items():
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
        assert_identical(tmp_path / f"library-{name}", tmp_path / f"command-{name}")


def test_an_epochs_batches_visit_every_sample_once_in_an_order_seed_and_epoch_decide():
    from mnist_cli.data.loader import batch_sizes, shuffled_batches
    from mnist_cli.training.state import derived_seed

    def order(epoch: int) -> list[int]:
        batches = shuffled_batches(103, 10, derived_seed(7, "epoch", epoch), torch.device("cpu"))
        assert [len(b) for b in batches] == [10] * 10 + [3]
        return torch.cat(batches).tolist()

    assert sorted(order(1)) == list(range(103)) and order(1) == order(1)  # again after a resume: the same order
    assert order(2) != order(1) != list(range(103))
    assert batch_sizes(21, 10) == [10, 10] and batch_sizes(1, 10) == [1]  # a trailing batch of one waits (batch norm)


def test_a_small_step_runs_on_one_thread_a_large_one_on_every_core():
    from mnist_cli.devices import default_threads

    assert default_threads(15, 59_210) == 1 and default_threads(256, 669_706) == torch.get_num_threads()  # 784-64x3, default
