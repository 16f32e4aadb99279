"""`mnist sweep` on synthetic data: run folders, runs.csv and cells.csv against eval and by hand, validation, failures."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import (
    MNIST,
    SWEEP_ARGS,
    assert_clean_error,
    epoch_records,
    invoke,
    start_mnist,
    sweep_base,
    sweep_results,
    training,
    wait_for,
    wait_until,
)
from conftest import csv_rows as rows

from mnist_cli.errors import ConfigError
from mnist_cli.sweep.grid import parse_grid, plan_sweep, short_keys
from mnist_cli.sweep.runner import worker_budget

GRID = ["--grid", "model.depth=1,2", "--grid", "model.width=16,32", "--seeds", "2"]
CELLS = ["depth=1,width=16", "depth=1,width=32", "depth=2,width=16", "depth=2,width=32"]


@pytest.fixture
def base(tmp_path) -> Path:
    return sweep_base(tmp_path)


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory, synthetic_root):
    """One 2x2 grid x 2 seeds sweep, `--jobs 1000` on a machine made to look like 2 cores: (base, out, result)."""
    folder = tmp_path_factory.mktemp("grid")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        for name, value in (("DATA", synthetic_root), ("CHECKPOINT", folder / "checkpoints"), ("CACHE", folder / "cache")):
            mp.setenv(f"MNIST_{name}_DIR", str(value))
        mp.setattr("mnist_cli.sweep.runner.cpu_cores", lambda: 2)
        mp.setattr("mnist_cli.sweep.runner.available_mb", lambda: 100_000)
        r = invoke("sweep", "-c", sweep_base(folder), *GRID, "--jobs", "1000", "--out", folder / "sweep", "--json")
    return folder / "base.yaml", folder / "sweep", r


def test_a_2x2_grid_with_2_seeds_gives_8_runs_4_cells_that_agree_with_eval_and_by_hand(grid_sweep):
    _, out, r = grid_sweep
    assert r.exit_code == 0, r.output
    assert "--jobs 1000 capped to 2 (2 cores)\nsweep of 8 runs: 2 local workers, 1 thread(s) per run" in r.stderr
    result = json.loads(r.stdout)

    folders = sorted(str(p.relative_to(out)) for p in out.glob("*/seed=*"))
    assert folders == [f"{cell}/seed={seed}" for cell in CELLS for seed in (0, 1)]
    for name in ("sweep.yaml", "runs.csv", "cells.csv", "heatmap.png", "accuracy-vs-parameters.png"):
        assert (out / name).is_file(), name
    assert len(yaml.safe_load((out / "sweep.yaml").read_text())["runs"]) == 8

    runs = rows(out / "runs.csv")
    assert [row["status"] for row in runs] == ["done"] * 8
    for row in runs:  # each run is an ordinary run folder: eval reads its best.pt and agrees to the last digit
        e = invoke("eval", out / row["out_dir"] / "best.pt", "--json")
        assert e.exit_code == 0, e.output
        assert json.loads(e.stdout)["accuracy"] == float(row["test_accuracy"]), row

    cells = rows(out / "cells.csv")
    assert len(cells) == 4
    for cell in cells:
        a, b = (
            float(r["test_accuracy"])
            for r in runs
            if (r["model.depth"], r["model.width"]) == (cell["model.depth"], cell["model.width"])
        )
        assert float(cell["n"]) == 2
        assert float(cell["test_accuracy_mean"]) == pytest.approx((a + b) / 2, abs=1e-12)
        assert float(cell["test_accuracy_std"]) == pytest.approx(abs(a - b) / math.sqrt(2), abs=1e-12)  # sample std, n - 1
    assert any(float(c["test_accuracy_std"]) > 0 for c in cells), cells  # the check above is not only 0 == 0

    assert set(result) == {"out_dir", "runs", "cells"}
    assert set(result["runs"][0]) == {
        "params", "seed", "out_dir", "status", "val_accuracy", "test_accuracy", "train_seconds", "parameters", "node", "error",
    }  # fmt: skip
    assert set(result["cells"][0]) == {
        "params", "n", "test_accuracy_mean", "test_accuracy_std", "val_accuracy_mean", "val_accuracy_std", "parameters",
        "train_seconds_mean",
    }  # fmt: skip
    assert result["runs"][0]["params"] == {"model.depth": 1, "model.width": 16}


def test_a_run_in_a_sweep_equals_the_same_run_by_mnist_train_and_a_rerun_reuses_finished_runs(grid_sweep, tmp_path):
    base, sweep, _ = grid_sweep
    out = Path(shutil.copytree(sweep, tmp_path / "sweep"))
    run = out / "depth=2,width=32" / "seed=1"
    t = invoke("train", "-c", run / "config.yaml", "--out", tmp_path / "alone", "--json", "-q")
    assert t.exit_code == 0, t.output
    alone = json.loads(t.stdout)
    row = next(x for x in rows(out / "runs.csv") if x["out_dir"] == "depth=2,width=32/seed=1")
    assert (float(row["test_accuracy"]), float(row["test_loss"])) == (alone["test_accuracy"], alone["test_loss"])
    for a, b in zip(epoch_records(run), epoch_records(tmp_path / "alone"), strict=True):
        assert (a.train_loss, a.val_loss) == (b.train_loss, b.val_loss)

    # The same command again trains nothing; a wider grid into the same folder adds its cells and reuses the rest.
    again = invoke("sweep", "-c", base, *GRID, "--jobs", "1", "--out", out)
    assert again.exit_code == 0, again.output
    assert "8 already finished" in again.stderr
    wider = invoke("sweep", "-c", base, *GRID[:2], "--grid", "model.width=16,32,8", "--jobs", "1", "--out", out)
    assert wider.exit_code == 0, wider.output
    assert "sweep of 6 runs, 4 already finished" in wider.stderr
    after = rows(out / "runs.csv")
    assert [x["out_dir"] for x in after if "width=8" in x["out_dir"]] == ["depth=1,width=8/seed=0", "depth=2,width=8/seed=0"]
    assert next(x for x in after if x["out_dir"] == "depth=2,width=32/seed=0") == next(
        x for x in rows(sweep / "runs.csv") if x["out_dir"] == "depth=2,width=32/seed=0"
    )
    assert len(rows(out / "cells.csv")) == 6
    other = invoke("sweep", "-c", base, *GRID, "--set", "train.lr=0.002", "--jobs", "1", "--out", out)  # never overwritten
    assert other.exit_code == 2, other.output
    assert "8 of 8 runs failed" in other.stderr and "of another config (train.lr: 0.001 there, 0.002 now)" in other.stderr


def test_invalid_grid_values_are_all_listed_before_anything_trains(base, tmp_path):
    out = tmp_path / "sweep"
    r = invoke("sweep", "-c", base, "--grid", "model.depth=1,100", "--grid", "model.activation=relu,swish", "--out", out)
    assert r.exit_code == 2, r.output
    assert "model.depth" in r.output and "100" in r.output, r.output
    assert "model.activation" in r.output and "swish" in r.output, r.output
    assert not out.exists()  # nothing planned on disk, nothing trained

    typo = invoke("sweep", "-c", base, "--grid", "model.widht=8,16", "--grid", "seed=1,2", "--grid", "model.depth=", "--out", out)
    assert typo.exit_code == 2, typo.output
    assert "seed: sweep seeds with --seeds N" in typo.output and "model.depth: give at least one value" in typo.output
    assert not out.exists()

    unknown = invoke("sweep", "-c", base, "--grid", "model.widht=8,16", "--out", out)
    assert_clean_error(unknown, "model.widht: unknown key (did you mean 'width'?) (every cell)")
    same = invoke("sweep", "-c", base, "--grid", "train.lr=1e-3,0.001", "--seeds", "2", "--out", out)
    assert_clean_error(same, "lr=0.001: two grid values give the same setting (in lr=0.001)")
    assert not out.exists()

    axes = parse_grid(["model.width=[256,128],[128,256]", "model.activation=relu,tanh", "train.lr=1e-3,0.01"])
    assert list(axes.values()) == [[[256, 128], [128, 256]], ["relu", "tanh"], ["1e-3", 0.01]]  # values are YAML
    with pytest.raises(ConfigError) as e:
        parse_grid(["model.depth", "model.width=8,8", "train.lr=[1,"])
    assert len(e.value.problems) == 3, e.value.problems
    assert short_keys(["model.depth", "model.width"]) == {"model.depth": "depth", "model.width": "width"}
    assert short_keys(["model.dropout", "x.dropout"]) == {"model.dropout": "model.dropout", "x.dropout": "x.dropout"}


def test_a_diverging_cell_is_recorded_as_failed_and_the_others_finish(base, tmp_path):
    out = tmp_path / "sweep"
    r = invoke("sweep", "-c", base, "--grid", "train.lr=0.003,10", "--set", "train.optimizer=sgd", "--set", "train.epochs=2",
               "--jobs", "1", "--out", out)  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "1 of 2 runs failed" in r.stderr and "lr=10.0/seed=0: loss became" in r.stderr, r.stderr
    done, failed = sorted(rows(out / "runs.csv"), key=lambda x: x["status"])
    assert (done["status"], failed["status"]) == ("done", "failed")
    assert "loss became" in failed["error"] and float(done["test_accuracy"]) > 0.5


def test_workers_are_capped_by_cores_and_memory_and_say_so(monkeypatch):
    monkeypatch.setattr("mnist_cli.sweep.runner.cpu_cores", lambda: 8)
    monkeypatch.setattr("mnist_cli.sweep.runner.available_mb", lambda: 2000)
    assert worker_budget(1000, 50) == (2, 4, "--jobs 1000 capped to 2 (2.0 GiB of memory free at ~800 MiB a worker)")
    assert worker_budget(None, 50) == (2, 4, "")  # the default asks for nothing it is refused
    assert worker_budget(4, 1) == (1, 8, "")  # one run needs one worker
    monkeypatch.setattr("mnist_cli.sweep.runner.available_mb", lambda: None)  # not Linux: cores alone
    assert worker_budget(1000, 50) == (8, 1, "--jobs 1000 capped to 8 (8 cores)")


def group_gone(pgid: int) -> bool:
    """Whether no process of the group is left (multiprocessing's resource tracker takes a moment to go)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_ctrl_c_stops_the_workers_keeps_finished_runs_and_prints_the_command_that_continues(base, tmp_path, reference_sweep):
    """Ctrl-C, then the printed command killed with SIGKILL mid-way, then that command again: the unbroken accuracies."""
    out = tmp_path / "sweep"
    proc = start_mnist(["sweep", "-c", base, *SWEEP_ARGS, "--jobs", "2", "--out", out], tmp_path)
    wait_until(proc, lambda: any(out.glob("*/seed=*/result.json")))
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C: to every process of the group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert wait_for(lambda: group_gone(proc.pid), timeout=10, every=0.05)  # no worker left behind
    assert "Continue with:" in err, err
    command = shlex.split(err.split("Continue with:")[1].strip().splitlines()[0])
    assert command[:2] == ["mnist", "sweep"] and command[command.index("--out") + 1] == str(out)
    stopped = rows(out / "runs.csv")
    done = sum(r["status"] == "done" for r in stopped)
    assert done >= 1, stopped  # what finished is kept
    assert all(not (out / r["out_dir"]).exists() for r in stopped if r["status"] == "pending")  # never started: no folder

    # The printed command continues the sweep; killed with SIGKILL (the sweep and its workers at once, as a crash
    # would) once it has finished a run of its own and trains another, and run again, it still ends complete.
    proc = start_mnist(command[1:], tmp_path)
    wait_until(proc, lambda: bool(training(out)) and len(list(out.glob("*/seed=*/result.json"))) > done)
    os.killpg(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert f"sweep of 6 runs, {done} already finished" in err, err
    assert len(list(out.glob("*/seed=*/result.json"))) < 6
    r = subprocess.run([*MNIST, *command[1:], "-q"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert sweep_results(out) == reference_sweep
    assert len(reference_sweep) == 6


def test_no_run_starts_once_the_sweep_is_stopping_and_a_run_waits_for_the_lock_of_a_killed_sweeps_task(base, tmp_path):
    from mnist_cli.sweep.run import execute, run_local

    plan = plan_sweep(base, [], ["model.width=16,24,32"], 2, tmp_path / "sweep")
    got = {}
    run_local(plan.runs, jobs=2, threads=1, should_stop=lambda: True, finished=got.__setitem__)
    assert sorted(got) == list(range(6)) and {r.status for r in got.values()} == {"pending"}, got
    assert not (tmp_path / "sweep").exists()  # not one run folder made

    spec = plan.runs[0]
    lock = Path(spec.out_dir) / ".lock"
    lock.parent.mkdir(parents=True)
    hold = "import fcntl, sys, time; f = open(sys.argv[1], 'a+b'); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True)"
    hold += "; time.sleep(1)"  # a task still training: its lock goes when it ends
    holder = subprocess.Popen([sys.executable, "-c", hold, str(lock)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    row = execute(spec, lambda: False)
    assert holder.poll() is not None  # it trained only once the holder had gone
    assert row.status == "done", row
    holder.stdout.close()


def test_the_ray_backend_without_ray_or_at_a_wrong_address_is_one_line_at_once(base, tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    local = invoke("sweep", "-c", base, "--grid", "model.width=8,16", "--address", "auto", "--backend", "local", "--out", out)
    assert_clean_error(local, "--address joins a Ray cluster, which --backend local does not use: drop --backend local")
    if importlib.util.find_spec("ray"):  # Ray installed: the address is what is wrong
        command = [*MNIST, "sweep", "-c", base, "--grid", "model.width=8,16", "--address", "127.0.0.1:1", "--out", out]
        r = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=120)  # Ray alone retries for minutes
        message = "error: no Ray cluster answers at 127.0.0.1:1 (Connection refused); start one with `ray start --head` or check"
        assert (r.returncode, r.stderr) == (2, message + " --address\n")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError, as where it is not installed
    r = invoke("sweep", "-c", base, "--grid", "model.width=8,16", "--backend", "ray", "--out", out)
    assert r.exit_code == 2, r.output
    assert (
        r.output.strip()
        == 'error: --backend ray needs Ray, which is not installed: pip install -e ".[ray]" (or make install-ray)'
    )
    assert not out.exists()  # nothing planned on disk in any of the three


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_a_sweep_on_a_local_ray_with_2_cpus_gives_the_local_backend_accuracies(base, tmp_path, monkeypatch, reference_sweep):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a Ray of this test's own on 127.0.0.1; no token made in ~/.ray
    monkeypatch.setattr("mnist_cli.sweep.runner.cpu_cores", lambda: 2)  # --jobs 2: Ray starts with 2 CPUs, 1 per run
    on_ray = invoke("sweep", "-c", base, *SWEEP_ARGS, "--jobs", "2", "-q", "--backend", "ray", "--out", tmp_path / "ray")
    assert on_ray.exit_code == 0, on_ray.output
    assert sweep_results(tmp_path / "ray") == reference_sweep
    assert not ray.is_initialized()


def test_sweep_figures_label_every_model_size_and_leave_no_lone_tick():
    """accuracy-vs-parameters labels each size (log decades alone left 12,730 and 50,890 unlabelled); a one-key
    heatmap has no unlabelled column tick."""
    from mnist_cli.sweep.results import Cell, accuracy_vs_parameters, heatmap
    from mnist_cli.sweep.run import RunRow

    cells = [Cell({"model.width": w}, 2, 0, 0.9, 0.01, 0.91, 0.01, p, 1.0) for w, p in ((16, 12730), (64, 50890))]
    ax = accuracy_vs_parameters(cells, ["model.width"]).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["12.7k", "50.9k"]
    runs = [RunRow({"model.width": w}, 0, "o", "done", test_accuracy=0.9) for w in (16, 64)]
    ax = heatmap(runs, ["model.width"]).axes[0]
    assert list(ax.get_xticks()) == [] and [t.get_text() for t in ax.get_yticklabels()] == ["16", "64"]
