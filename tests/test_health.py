"""Layer health while training: the numbers the probe measures, the health and step records, and that probing
changes nothing about training (same weights on or off; a resumed run's records: conftest.assert_identical). Most tests
read conftest's hard_run: dropout and batch norm, which a probe in training mode would draw masks from and move."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import records, write_config

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.config import ModelConfig, load_config
from mnist_cli.errors import MnistError
from mnist_cli.model import build_model
from mnist_cli.record import EpochMetrics, HealthRecord, StepRecord, read_events, read_run_records
from mnist_cli.training.loop import train
from mnist_cli.training.probe import PROBE_IMAGES, HealthProbe, probe_steps

STEPS = 16  # 500 training images at batch 32: 15 full batches and the trailing 20


def test_a_run_records_health_at_the_planned_steps(hard_run):
    health = records(hard_run, HealthRecord)
    planned = sorted(probe_steps(STEPS, 4))
    assert planned == [4, 8, 12, 16]
    assert [(r.epoch, r.step) for r in health] == [(1, 1)] + [(e, s) for e in (1, 2) for s in planned]
    assert [r.global_step for r in health] == [1, 4, 8, 12, 16, 20, 24, 28, 32]
    assert [r.end_of_epoch for r in health] == [False, False, False, False, True, False, False, False, True]
    for r in health:
        assert r.activation == "relu" and r.steps_per_epoch == STEPS
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
    assert health[-1].loss < health[0].loss  # it learned


def test_steps_epochs_and_the_test_are_recorded_in_order(hard_run):
    steps = records(hard_run, StepRecord)
    # The progress cadence: every max(1, 16 // 50) = 1 step.
    assert [(s.epoch, s.step) for s in steps] == [(e, s) for e in (1, 2) for s in range(1, STEPS + 1)]
    assert all(s.global_step == (s.epoch - 1) * STEPS + s.step for s in steps)
    # Cosine from lr 0.003 to 0 over 32 steps; the first step uses the full rate.
    assert steps[0].lr == pytest.approx(0.003) and steps[-1].lr < 0.0001
    assert all(isinstance(s.loss, float) for s in steps)
    epochs = records(hard_run, EpochMetrics)
    assert [(m.epoch, m.step, m.global_step, m.samples) for m in epochs] == [(1, 16, 16, 500), (2, 16, 32, 500)]
    assert all(0.1 < m.train_accuracy <= 1 for m in epochs) and epochs[1].train_accuracy > epochs[0].train_accuracy
    kinds = [r.kind for r in records(hard_run)]
    assert kinds[-1] == "test" and kinds.count("test") == 1
    assert [r.global_step for r in records(hard_run)] == sorted(r.global_step for r in records(hard_run))


def test_health_off_records_no_health_and_trains_the_same_weights(hard_run, tmp_path):
    cfg = load_config(hard_run / "config.yaml", ["train.health=false"])
    train(cfg, tmp_path / "off")
    assert not records(tmp_path / "off", HealthRecord) and records(tmp_path / "off", StepRecord)
    a, b = load_checkpoint(hard_run / "last.pt"), load_checkpoint(tmp_path / "off" / "last.pt")
    for key, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][key]), key  # running means included: probes leave batch norm alone
    assert [m.train_accuracy for m in records(hard_run, EpochMetrics)] == [
        m.train_accuracy for m in records(tmp_path / "off", EpochMetrics)
    ]
    # Overwriting a run starts its record afresh.
    train(load_config(hard_run / "config.yaml", ["train.health=false", "train.epochs=1"]), tmp_path / "off", overwrite=True)
    assert max(s.epoch for s in records(tmp_path / "off", StepRecord)) == 1


def test_records_past_the_last_save_and_a_torn_row_are_dropped_on_resume(hard_run, tmp_path):
    cfg = load_config(hard_run / "config.yaml", ["train.save_every_steps=5"])

    def crash(event):
        if isinstance(event, HealthRecord) and event.step == 12:  # dies after the save at step 10, like a kill
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        train(cfg, tmp_path / "run", crash)
    assert [r.step for r in records(tmp_path / "run", HealthRecord)] == [1, 4, 8, 12]  # 12: past last.pt's step 10
    with open(tmp_path / "run" / "events.jsonl", "a") as f:
        f.write('{"kind": "step", "epoch": 1, "st')  # and a row torn by the kill
    train(cfg, tmp_path / "run", resume_from=load_checkpoint(tmp_path / "run" / "last.pt"))
    assert records(tmp_path / "run", HealthRecord) == records(hard_run, HealthRecord)
    assert records(tmp_path / "run", StepRecord) == records(hard_run, StepRecord)


def test_a_torn_last_row_is_ignored_a_bad_row_is_named_and_newer_keys_are_ignored(hard_run, tmp_path):
    events = tmp_path / "events.jsonl"
    text = (hard_run / "events.jsonl").read_text()
    events.write_text(text.replace('"activation": "relu"', '"activation": "relu", "added_later": 1') + '{"kind": "he')
    assert read_events(events) == records(hard_run)
    events.write_text("not json\n" + text)
    with pytest.raises(MnistError, match=r"events.jsonl, line 1: not JSON .*not written by mnist train"):
        read_events(events)


def test_rows_of_the_release_before_read_as_the_same_records(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        '{"epoch": 1, "train_loss": 0.5, "val_loss": 0.2, "val_accuracy": 0.95, "lr": 0.001, "seconds": 1.0,'
        ' "samples_per_second": 9}\n'  # schema 1: no train_accuracy
    )
    (tmp_path / "steps.jsonl").write_text('{"epoch": 1, "step": 2, "global_step": 2, "loss": 0.7, "lr": 0.001, "schema": 1}\n')
    assert read_run_records(tmp_path) == [
        EpochMetrics(1, 0.5, 0.2, 0.95, 0.001, 1.0, 9.0, train_accuracy=None),
        StepRecord(1, 2, 2, 0.7, 0.001),
    ]


# --- the probe on hand-made models -------------------------------------------------------------------------------


def model_and_probe(activation: str, images: torch.Tensor, **model) -> tuple[torch.nn.Module, HealthProbe]:
    torch.manual_seed(0)
    net = build_model(ModelConfig(depth=2, width=8, activation=activation, **model), 784, 10)
    return net, HealthProbe(net, images, activation, steps_per_epoch=10, probes_per_epoch=2)


def test_the_probe_measures_gradients_updates_and_activations_exactly():
    torch.manual_seed(1)
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
    torch.manual_seed(1)
    net, probe = model_and_probe(activation, torch.randn(32, 28, 28))
    with torch.no_grad():
        net.hidden[0].linear.weight.mul_(scale)  # pre-activations of ~+-100 (all units at a flat end) or ~+-0.001
    record = probe.record(epoch=1, step=1, loss=None)
    assert record.hidden[0].saturated_fraction == saturated
    assert all(layer.dead_fraction is None for layer in record.hidden)
    assert all(layer.grad_norm is None for layer in record.layers)  # no backward was measured


def test_probing_draws_no_random_numbers_and_leaves_the_model_as_it_was():
    torch.manual_seed(3)
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


def test_without_validation_images_the_probe_uses_training_images(tmp_path):
    cfg = load_config(write_config(tmp_path / "c.yaml", data={"val_size": 0}, train={"epochs": 1}))
    train(cfg, tmp_path / "run")
    health = records(tmp_path / "run", HealthRecord)
    assert health and all(r.probe_images == PROBE_IMAGES for r in health)  # 600 training images, 512 probed
