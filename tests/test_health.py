"""Layer health while training: the numbers the probe measures, health.jsonl and steps.jsonl, and that probing
changes nothing about training (same weights on or off, bit-identical after a resume)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import write_config
from test_resume import HARD as RESUME_HARD

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.config import ModelConfig, load_config
from mnist_cli.errors import MnistError, TrainingInterrupted
from mnist_cli.model import build_model
from mnist_cli.training.health import HEALTH_SCHEMA, PROBE_IMAGES, HealthRecord
from mnist_cli.training.loop import train
from mnist_cli.training.metrics import EpochMetrics, from_jsonl
from mnist_cli.training.probe import HealthProbe, probe_steps
from mnist_cli.training.rundir import RunDir

# Dropout and batch norm: a probe that ran in training mode would draw dropout masks and move the running statistics.
# test_resume's hard config (dropout, batch norm, cosine schedule), over 2 epochs instead of 3.
HARD = {**RESUME_HARD, "train": {**RESUME_HARD["train"], "epochs": 2}}
STEPS = 16  # 500 training images at batch 32: 15 full batches and the trailing 20


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def hard_config(tmp_path) -> Path:
    return write_config(tmp_path / "hard.yaml", **HARD)


@pytest.fixture
def baseline(hard_config, tmp_path) -> Path:
    train(load_config(hard_config), tmp_path / "baseline")
    return tmp_path / "baseline"


# --- what a run writes -------------------------------------------------------------------------------------------


def test_a_run_records_health_at_the_planned_steps(baseline):
    run = RunDir(baseline)
    records = run.read_health()
    planned = sorted(probe_steps(STEPS, 4))
    assert planned == [4, 8, 12, 16]
    assert [(r.epoch, r.step) for r in records] == [(1, 1)] + [(e, s) for e in (1, 2) for s in planned]
    assert [r.global_step for r in records] == [1, 4, 8, 12, 16, 20, 24, 28, 32]
    assert [r.end_of_epoch for r in records] == [False, False, False, False, True, False, False, False, True]
    for r in records:
        assert r.schema == HEALTH_SCHEMA and r.activation == "relu" and r.steps_per_epoch == STEPS
        assert r.probe_images == 100  # the whole validation split: it holds fewer than PROBE_IMAGES
        assert [layer.name for layer in r.layers] == ["hidden.0", "hidden.1", "output"]
        assert [layer.width for layer in r.layers] == [32, 32, 10]
        assert r.layer("output").grad_ratio == pytest.approx(1.0)
        assert r.layer("output").activation_mean is None and r.layer("output").dead_fraction is None
        for layer in r.hidden:
            assert layer.grad_norm > 0 and math.isfinite(layer.grad_norm)
            assert layer.grad_ratio == pytest.approx(layer.grad_norm / r.layer("output").grad_norm)
            assert 0 < layer.update_ratio < 1  # one Adam step at lr 0.003 moves weights by well under their size
            assert layer.activation_mean > 0 and layer.activation_std > 0  # ReLU outputs: non-negative, not all 0
            assert 0 <= layer.dead_fraction < 0.5 and layer.saturated_fraction is None
    assert records[-1].loss < records[0].loss  # it learned


def test_steps_and_training_accuracy_are_recorded(baseline):
    steps = RunDir(baseline).read_steps()
    # The progress cadence: every max(1, 16 // 50) = 1 step.
    assert [(s.epoch, s.step) for s in steps] == [(e, s) for e in (1, 2) for s in range(1, STEPS + 1)]
    assert all(s.global_step == (s.epoch - 1) * STEPS + s.step for s in steps)
    # Cosine from lr 0.003 to 0 over 32 steps; the first step uses the full rate.
    assert steps[0].lr == pytest.approx(0.003) and steps[-1].lr < 0.0001
    assert all(isinstance(s.loss, float) for s in steps)
    metrics = RunDir(baseline).read_metrics()
    assert [m.schema for m in metrics] == [2, 2]
    assert all(0.1 < m.train_accuracy <= 1 for m in metrics)
    assert metrics[1].train_accuracy > metrics[0].train_accuracy
    assert "train_accuracy" in rows(baseline / "metrics.jsonl")[0]


def test_health_off_writes_no_health_file_and_trains_the_same_weights(hard_config, baseline, tmp_path):
    train(load_config(hard_config, ["train.health=false"]), tmp_path / "off")
    assert not (tmp_path / "off" / "health.jsonl").exists()
    assert (tmp_path / "off" / "steps.jsonl").exists()
    a, b = load_checkpoint(baseline / "last.pt"), load_checkpoint(tmp_path / "off" / "last.pt")
    for key, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][key]), key  # running means included: probes leave batch norm alone
    assert [m.train_accuracy for m in RunDir(baseline).read_metrics()] == [
        m.train_accuracy for m in RunDir(tmp_path / "off").read_metrics()
    ]


def test_overwriting_a_run_starts_its_logs_afresh(hard_config, baseline):
    train(load_config(hard_config, ["train.health=false", "train.epochs=1"]), baseline, overwrite=True)
    assert not (baseline / "health.jsonl").exists()
    assert max(s.epoch for s in RunDir(baseline).read_steps()) == 1


# --- resume ------------------------------------------------------------------------------------------------------


def test_a_resumed_run_writes_the_same_logs_as_an_unbroken_one(hard_config, baseline, tmp_path):
    cfg = load_config(hard_config, ["train.save_every_steps=5"])
    run = tmp_path / "stopped"
    for stop_after in (7, 9):  # mid-epoch 1, then at the boundary
        polls = iter(range(1, 1000))
        resume = load_checkpoint(run / "last.pt") if (run / "last.pt").exists() else None
        with pytest.raises(TrainingInterrupted):
            train(cfg, run, resume_from=resume, should_stop=lambda n=stop_after, p=polls: next(p) >= n)
    train(cfg, run, resume_from=load_checkpoint(run / "last.pt"))
    for name in ("health.jsonl", "steps.jsonl"):
        assert rows(run / name) == rows(baseline / name), name


def test_rows_written_after_the_last_save_are_dropped_on_resume(hard_config, baseline, tmp_path):
    cfg = load_config(hard_config, ["train.save_every_steps=5"])

    def crash(event):
        if getattr(event, "step", 0) == 13:  # dies after the save at step 10, like a kill
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        train(cfg, tmp_path / "run", crash)
    assert [r.step for r in RunDir(tmp_path / "run").read_health()] == [1, 4, 8, 12]  # 12: past last.pt's step 10
    with open(tmp_path / "run" / "health.jsonl", "a") as f:
        f.write('{"epoch": 1, "st')  # and a row torn by the kill
    train(cfg, tmp_path / "run", resume_from=load_checkpoint(tmp_path / "run" / "last.pt"))
    for name in ("health.jsonl", "steps.jsonl"):
        assert rows(tmp_path / "run" / name) == rows(baseline / name), name


# --- reading the files back --------------------------------------------------------------------------------------


def test_a_torn_last_row_is_ignored_and_a_bad_row_is_an_error(baseline):
    run = RunDir(baseline)
    n = len(run.read_health())
    with open(run.health, "a") as f:
        f.write('{"epoch": 3, "step"')
    assert len(run.read_health()) == n
    run.health.write_text("not json\n" + run.health.read_text())
    with pytest.raises(MnistError, match=r"health.jsonl is not a health file written by mnist train"):
        run.read_health()


def test_records_round_trip_and_ignore_keys_from_newer_releases(baseline):
    record = RunDir(baseline).read_health()[-1]
    row = record.as_dict() | {"added_later": 1}
    row["layers"][0]["added_later"] = 2
    assert HealthRecord.from_dict(json.loads(json.dumps(row))) == record


def test_schema_1_metrics_rows_read_without_training_accuracy():
    old = json.dumps(
        {
            "epoch": 1,
            "train_loss": 0.5,
            "val_loss": 0.2,
            "val_accuracy": 0.95,
            "lr": 0.001,
            "seconds": 1.0,
            "samples_per_second": 9,
        }
    )
    (row,) = from_jsonl(old)
    assert row == EpochMetrics(1, 0.5, 0.2, 0.95, 0.001, 1.0, 9.0, train_accuracy=None, schema=1)
    assert row.as_dict()["schema"] == 1


# --- the probe on hand-made models -------------------------------------------------------------------------------


def model_and_probe(activation: str, images: torch.Tensor, **model) -> tuple[torch.nn.Module, HealthProbe]:
    torch.manual_seed(0)
    net = build_model(ModelConfig(depth=2, width=8, activation=activation, **model), 784, 10)
    return net, HealthProbe(net, images, activation, steps_per_epoch=10, probes_per_epoch=2)


def test_the_probe_measures_gradients_updates_and_activations_exactly():
    images = torch.randn(64, 28, 28)
    net, probe = model_and_probe("relu", images)
    with torch.no_grad():
        net.hidden[0].linear.bias[:4] = -1e4  # 4 of 8 units can never fire
    loss = torch.nn.functional.cross_entropy(net(images), torch.arange(64) % 10)
    loss.backward()
    grads = [layer.weight.grad.clone() for layer in net.linears()]
    weights = [layer.weight.detach().clone() for layer in net.linears()]
    probe.before_update()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    record = probe.record(epoch=1, step=5, loss=loss.item())
    assert (record.global_step, record.end_of_epoch, record.probe_images) == (5, False, 64)
    for layer, g, w in zip(record.layers, grads, weights, strict=True):
        assert layer.grad_norm == pytest.approx(g.norm().item(), rel=1e-5)
        assert layer.weight_norm == pytest.approx(w.norm().item(), rel=1e-5)
        assert layer.update_ratio == pytest.approx(0.1 * g.norm().item() / w.norm().item(), rel=1e-4)  # SGD: lr * g
    h0 = torch.relu(net.hidden[0].linear(images.flatten(1)))
    assert record.layers[0].dead_fraction == pytest.approx(0.5)
    assert record.layers[0].activation_mean == pytest.approx(h0.mean().item(), rel=1e-4)
    assert record.layers[0].activation_std == pytest.approx(h0.std().item(), rel=1e-4)
    assert not any(layer.act._forward_hooks for layer in net.hidden)  # hooks only while probing
    assert net.training


@pytest.mark.parametrize(
    ("activation", "scale", "saturated"),
    [("sigmoid", 100.0, 1.0), ("sigmoid", 1e-3, 0.0), ("tanh", 100.0, 1.0), ("tanh", 1e-3, 0.0)],
)
def test_saturated_units_are_those_at_a_flat_end(activation, scale, saturated):
    net, probe = model_and_probe(activation, torch.randn(32, 28, 28))
    with torch.no_grad():
        net.hidden[0].linear.weight.mul_(scale)  # pre-activations of ~+-100 (all units at a flat end) or ~+-0.001
    record = probe.record(epoch=1, step=1, loss=None)
    assert record.hidden[0].saturated_fraction == saturated
    assert all(layer.dead_fraction is None for layer in record.hidden)
    assert all(layer.grad_norm is None for layer in record.layers)  # no backward was measured


def test_probing_draws_no_random_numbers_and_leaves_the_model_as_it_was():
    net, probe = model_and_probe("relu", torch.randn(16, 28, 28), dropout=0.5, norm="batch")
    state = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    probe.record(epoch=1, step=1, loss=None)
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())  # batch norm's running stats too
    assert net.training


def test_probe_steps_spread_over_the_epoch_and_end_on_its_last_step():
    assert probe_steps(215, 4) == {54, 108, 161, 215}
    assert probe_steps(3, 4) == {1, 2, 3}
    assert probe_steps(1, 4) == {1}
    assert PROBE_IMAGES == 512


def test_without_validation_images_the_probe_uses_training_images(tmp_path):
    cfg = load_config(write_config(tmp_path / "c.yaml", data={"val_size": 0}, train={"epochs": 1}))
    train(cfg, tmp_path / "run")
    records = RunDir(tmp_path / "run").read_health()
    assert records and all(r.probe_images == PROBE_IMAGES for r in records)  # 600 training images, 512 probed
