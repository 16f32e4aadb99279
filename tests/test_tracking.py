"""TensorBoard and MLflow read back what a run writes: their own readers, not ours."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from conftest import MNIST, assert_clean_error, invoke, position, records, start, wait_for, write_config, write_mnist

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.config import load_config
from mnist_cli.errors import TrainingInterrupted
from mnist_cli.record import EpochMetrics, HealthRecord, StepRecord
from mnist_cli.record import TestRecord as FinalTest  # not a test class for pytest to collect
from mnist_cli.tracking import mlflow_target
from mnist_cli.training.loop import train


def tensorboard(run):
    """TensorBoard's own reader over a run folder, every value kept."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reader = EventAccumulator(str(run), size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0})
    reader.Reload()
    return reader


def steps_and_values(reader, tag):
    return [(e.step, pytest.approx(e.value, rel=1e-6)) for e in reader.Scalars(tag)]


# --- MLflow: a SQLite tracking store in the test's folder ----------------------------------------------------------


@pytest.fixture
def mlflow_client(tmp_path, monkeypatch):
    """A client of the SQLite tracking store that runs of this test log to."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")


def mlflow_runs(client):
    return client.search_runs([client.get_experiment_by_name("mnist-cli").experiment_id])


def test_tensorboard_and_mlflow_show_the_runs_own_record(tiny_config, tmp_path, mlflow_client):
    run = tmp_path / "run"
    r = invoke("train", "-c", tiny_config, "--set", "model.depth=2", "--out", run, "--mlflow", "-q", "--json")
    assert r.exit_code == 0, r.output
    tb = tensorboard(run)
    epochs, [test] = records(run, EpochMetrics), records(run, FinalTest)
    assert steps_and_values(tb, "val/accuracy") == [(m.global_step, m.val_accuracy) for m in epochs]
    assert steps_and_values(tb, "val/loss") == [(m.global_step, m.val_loss) for m in epochs]
    assert steps_and_values(tb, "test/accuracy") == [(test.global_step, test.accuracy)]
    assert [e.step for e in tb.Scalars("train/loss")] == [s.global_step for s in records(run, StepRecord)]
    probes = records(run, HealthRecord)
    for layer in ("hidden.0", "hidden.1", "output"):
        assert [e.step for e in tb.Histograms(f"weights/{layer}")] == [p.global_step for p in probes]
        assert [e.step for e in tb.Histograms(f"gradients/{layer}")] == [p.global_step for p in probes]
        grad_norms = [(p.global_step, p.layer(layer).grad_norm) for p in probes]
        assert steps_and_values(tb, f"health/grad_norm/{layer}") == grad_norms
    assert [p.layer("hidden.0").dead_fraction for p in probes] == [
        pytest.approx(e.value) for e in tb.Scalars("health/dead_fraction/hidden.0")
    ]
    # 32 units of 28x28: 8 tiles to a row, 1 pixel between them.
    images = tb.Images("first_layer_weights")
    assert [i.step for i in images] == [m.global_step for m in epochs]
    assert (images[0].width, images[0].height) == (8 * 29 + 1, 4 * 29 + 1)
    from tensorboard.plugins.hparams import plugin_data_pb2

    start_info = plugin_data_pb2.HParamsPluginData.FromString(tb.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    hparams = start_info.session_start_info.hparams
    assert hparams["train.lr"].number_value == 0.003 and hparams["model.width"].number_value == 32
    assert hparams["model.activation"].string_value == "relu"
    # MLflow: the same run, found in the SQLite store with its params, tags, metrics and files
    result = json.loads(r.stdout)
    [logged] = mlflow_runs(mlflow_client)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["train.lr"] == "0.003" and logged.data.params["model.width"] == "32"
    assert logged.data.tags["dataset"] == "mnist" and logged.data.tags["architecture"] == result["model"] == "784-32-32-10"
    assert logged.data.metrics["test/accuracy"] == pytest.approx(result["test_accuracy"])
    assert logged.data.metrics["val/accuracy"] == pytest.approx(result["val_accuracy"])
    history = mlflow_client.get_metric_history(logged.info.run_id, "val/accuracy")
    assert [(m.step, pytest.approx(m.value)) for m in history] == [(e.global_step, e.val_accuracy) for e in epochs]
    assert {a.path for a in mlflow_client.list_artifacts(logged.info.run_id)} == {"best.pt", "config.yaml"}


def test_overwrite_replaces_the_event_file_and_tensorboard_can_be_off(tiny_config, tmp_path):
    run = tmp_path / "run"
    assert invoke("train", "-c", tiny_config, "--out", run, "-q", "--epochs", "1").exit_code == 0
    [first] = run.glob("events.out.tfevents.*")
    r = invoke("train", "-c", tiny_config, "--out", run, "-q", "--epochs", "1", "--overwrite", "--set", "train.tensorboard=false")
    assert r.exit_code == 0, r.output
    assert not list(run.glob("events.out.tfevents.*")), first  # the old run's event file went with its other files
    r = invoke("train", "-c", tiny_config, "--out", run, "-q", "--epochs", "1", "--overwrite")
    assert r.exit_code == 0, r.output
    assert len(list(run.glob("events.out.tfevents.*"))) == 1


def test_a_killed_and_resumed_run_shows_each_step_once(tmp_path):
    # 88 steps an epoch; last.pt every second epoch, so a kill in epoch 4 resumes from the end of epoch 2, after
    # epoch 3's numbers reached the event file.
    root = write_mnist(tmp_path / "bigger", n_train=3000)
    cfg = write_config(
        tmp_path / "kill.yaml",
        data={"val_size": 200, "root": str(root)},
        model={"depth": 2, "width": 256},
        train={"epochs": 4, "save_every_epochs": 2},
    )
    out = tmp_path / "run"
    proc = start(["train", "-c", cfg, "--out", out, "-q"], tmp_path)
    epoch_4_begun = lambda: '"epoch": 4' in ((out / "events.jsonl").read_text() if (out / "events.jsonl").exists() else "")  # noqa: E731
    assert wait_for(lambda: proc.poll() is not None or epoch_4_begun())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and position(out / "last.pt") == (3, 0)
    assert [e.step for e in tensorboard(out).Scalars("val/accuracy")] == [88, 176, 264]  # epoch 3: to be redone
    r = subprocess.run([*MNIST, "train", "-c", cfg, "--out", out, "--resume", "auto", "-q"], cwd=tmp_path, capture_output=True)
    assert r.returncode == 0, r.stderr
    tb, epochs = tensorboard(out), records(out, EpochMetrics)
    assert steps_and_values(tb, "val/accuracy") == [(m.global_step, m.val_accuracy) for m in epochs]
    assert [m.global_step for m in epochs] == [88, 176, 264, 352]
    for tag in ("train/loss", "health/grad_norm/output"):
        steps = [e.step for e in tb.Scalars(tag)]
        assert steps == sorted(set(steps)), tag
    assert [i.step for i in tb.Images("first_layer_weights")] == [88, 176, 264, 352]


def test_a_sweep_is_a_parent_run_with_a_nested_run_per_training(tiny_config, tmp_path, mlflow_client):
    # Two workers: the parent run's id travels to other processes.
    r = invoke(
        "sweep", "-c", tiny_config, "--grid", "model.width=8,16", "--jobs", "2", "--out", tmp_path / "sw", "-q", "--mlflow"
    )
    assert r.exit_code == 0, r.output
    runs = mlflow_runs(mlflow_client)
    [parent] = [x for x in runs if "mlflow.parentRunId" not in x.data.tags]
    children = [x for x in runs if x.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.data.params["model.width"] for c in children) == ["16", "8"] and len(runs) == 3
    assert all(x.info.status == "FINISHED" for x in runs)
    assert all(0 <= c.data.metrics["test/accuracy"] <= 1 for c in children)
    assert "runs.csv" in {a.path for a in mlflow_client.list_artifacts(parent.info.run_id)}


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_mlflow_without_the_package_is_one_line_naming_the_extra(tiny_config, tmp_path, monkeypatch, command):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError, as when it is not installed
    r = invoke(command, "-c", tiny_config, "--out", tmp_path / "run", "--mlflow")
    assert_clean_error(r, '--mlflow needs the mlflow package: pip install "mnist-cli[mlflow]"')
    assert not (tmp_path / "run").exists()


def test_a_stopped_and_resumed_run_continues_its_mlflow_run(tiny_config, tmp_path, mlflow_client):
    cfg, run, polls = load_config(tiny_config, ["train.epochs=3"]), tmp_path / "run", iter(range(1000))
    with pytest.raises(TrainingInterrupted):  # as Ctrl-C stops it: in epoch 2, last.pt saved
        train(cfg, run, should_stop=lambda: next(polls) >= 25, mlflow=mlflow_target(True))
    [stopped] = mlflow_runs(mlflow_client)
    assert stopped.info.status == "KILLED"
    train(cfg, run, resume_from=load_checkpoint(run / "last.pt"), mlflow=mlflow_target(True))
    [resumed] = mlflow_runs(mlflow_client)
    assert resumed.info.run_id == stopped.info.run_id and resumed.info.status == "FINISHED"
    history = mlflow_client.get_metric_history(resumed.info.run_id, "val/accuracy")
    assert [m.step for m in history] == [e.global_step for e in records(run, EpochMetrics)]
