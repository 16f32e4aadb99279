"""Verdicts: each threshold on both sides on hand-made records, load_run's refusals, and three real MNIST runs
(an 8-layer sigmoid net, the default recipe, a ReLU net pushed into dying units) judged with their numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import REAL_DATA, require_real_data

from mnist_cli.config import Config, load_config
from mnist_cli.record import EpochMetrics, HealthRecord, LayerHealth
from mnist_cli.report import verdicts as v
from mnist_cli.report.run import RunRecord, load_run
from mnist_cli.report.verdicts import Verdict, verdicts
from mnist_cli.training.loop import train
from mnist_cli.training.rundir import RunDir


def layer(name: str, grad_ratio: float = 1.0, dead: float | None = 0.0, saturated: float | None = None) -> LayerHealth:
    return LayerHealth(name, 64, 5.0, grad_ratio * 0.1, grad_ratio, 1e-3, 0.4, 0.6, dead, saturated)


def probe(epoch: int, step: int, hidden: list[LayerHealth], activation: str = "relu") -> HealthRecord:
    output = layer("output", dead=None)
    return HealthRecord(epoch, step, (epoch - 1) * 100 + step, 100, step == 100, 0.5, activation, 512, [*hidden, output])


def epoch(n: int, val: float | None = 0.97, train: float | None = 0.98, val_loss: float = 0.1) -> EpochMetrics:
    return EpochMetrics(n, 0.2, val_loss if val is not None else None, val, 1e-3, 1.0, 1000.0, train_accuracy=train)


def run_of(metrics: list[EpochMetrics], health: list[HealthRecord] = (), **model) -> RunRecord:
    cfg = Config.model_validate({"model": {"depth": 2, **model}})
    return RunRecord(RunDir(Path("run")), cfg, list(metrics), list(health), [], None)


HEALTHY = [epoch(1, 0.970, 0.965), epoch(2, 0.9740, 0.980)]
OK = [layer("hidden.0"), layer("hidden.1")]  # healthy hidden layers at a probe


def healthy_probes(**hidden_kw) -> list[HealthRecord]:
    hidden = [layer("hidden.0", **hidden_kw), layer("hidden.1")]
    return [probe(e, s, hidden) for e in (1, 2) for s in (50, 100)]


def tanh_probe(saturated: float) -> HealthRecord:
    return probe(1, 100, [layer("hidden.0", dead=None, saturated=0.0), layer("hidden.1", dead=None, saturated=saturated)], "tanh")


@pytest.mark.parametrize(
    ("check", "run"),
    [
        (verdicts, run_of(HEALTHY, healthy_probes())),
        (v.vanishing_gradients, run_of(HEALTHY, healthy_probes(grad_ratio=1.1e-3), activation="sigmoid")),
        (v.exploding_gradients, run_of(HEALTHY, healthy_probes(grad_ratio=5e2))),
        (v.dead_units, run_of(HEALTHY, healthy_probes(dead=0.24))),
        # Judged at the last probe: dead units early on that came back are no verdict.
        (v.dead_units, run_of(HEALTHY, [probe(1, 100, [layer("hidden.0", dead=0.9), OK[1]]), probe(2, 100, OK)])),
        (v.saturation, run_of(HEALTHY, [tanh_probe(0.2)], activation="tanh")),
        (v.overfitting, run_of([epoch(1, 0.96, 0.96), epoch(2, 0.971, 0.985)])),
        (v.overfitting, run_of([epoch(1, 0.97, 0.97, 0.12), epoch(2, 0.975, 0.98, 0.10), epoch(3, 0.975, 0.985, 0.115)])),
        (v.not_learning, run_of([epoch(1, 0.55, 0.55)])),
        (v.underfitting, run_of([epoch(1, 0.970, 0.97), epoch(2, 0.974, 0.975)])),
    ],
)
def test_a_healthy_run_and_each_check_just_short_of_its_threshold_say_nothing(check, run):
    assert check(run) in (None, [])  # verdicts() finds [], each check None


def test_vanishing_gradients_below_a_thousandth_of_the_output_layers():
    found = v.vanishing_gradients(run_of(HEALTHY, healthy_probes(grad_ratio=0.9e-3), activation="sigmoid"))
    assert found.layers == ["hidden.0"]
    assert found.message == (
        "layer 1 of 2: gradients are below 1/1000 of the output layer's from the first epoch to the last "
        "(median ratio 9.0e-04 to 9.0e-04; vanishing: sigmoid's slope is at most 1/4, and less where it saturates)"
    )
    assert found.suggestion.startswith("try model.activation: relu, model.init: kaiming")
    assert found.evidence["grad_ratio_median_first_epoch"] == {"hidden.0": 0.9e-3}


def test_vanishing_in_the_first_epoch_only_is_said_so():
    hidden_low = [layer("hidden.0", 1e-5), layer("hidden.1", 1e-4)]
    health = [probe(1, 50, hidden_low), probe(1, 100, hidden_low), probe(2, 50, OK), probe(2, 100, OK)]
    found = v.vanishing_gradients(run_of(HEALTHY, health))
    assert found.layers == ["hidden.0", "hidden.1"]
    assert found.message.startswith("layers 1-2 of 2: gradients are below 1/1000 of the output layer's in the first epoch")
    assert "median ratio 1.0e-05 to 1.0e-04" in found.message


@pytest.mark.parametrize("ratio", [2e3, math.inf])
def test_exploding_gradients_above_a_thousand_times_the_output_layers(ratio):
    found = v.exploding_gradients(run_of(HEALTHY, healthy_probes(grad_ratio=ratio)))
    assert found.layers == ["hidden.0"]
    assert found.message.startswith("layer 1 of 2: gradients are above 1000 times the output layer's")


def test_dead_units_from_a_quarter_of_a_layer():
    found = v.dead_units(run_of(HEALTHY, healthy_probes(dead=0.25)))
    assert found.message == (
        "layer 1 of 2: up to 25% of units never activate on 512 probe images (layer 1 25%; dead ReLU, since epoch 1 step 50)"
    )
    assert found.suggestion == "lower train.lr (now 0.002), use model.activation: gelu or silu, or model.init: kaiming"
    assert found.evidence["dead_fraction"] == {"hidden.0": 0.25}


def test_saturation_from_a_quarter_of_a_layer():
    found = v.saturation(run_of(HEALTHY, [tanh_probe(0.3)], activation="tanh"))
    assert found.layers == ["hidden.1"]
    assert found.message.startswith("layer 2 of 2: up to 30% of units sit at tanh's flat ends (layer 2 30%)")


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ([epoch(1, 0.96, 0.96), epoch(2, 0.971, 0.999)], "training accuracy 99.9%, validation 97.1%: overfitting"),
        (
            [epoch(1, 0.97, 0.97, 0.12), epoch(2, 0.975, 0.98, 0.10), epoch(3, 0.975, 0.985, 0.125)],
            "training accuracy 98.5%, validation 97.5%; validation loss 0.125, 25% above its lowest 0.100 at epoch 2: "
            "overfitting",
        ),
    ],
)
def test_overfitting_from_a_two_point_gap_or_a_rising_validation_loss(metrics, message):
    found = v.overfitting(run_of(metrics))
    assert found.message == message
    if len(metrics) == 2:
        assert found.evidence["gap"] == pytest.approx(0.028)


@pytest.mark.parametrize(("best", "how"), [(0.15, "not learning"), (0.45, "barely learning")])
def test_not_learning_under_five_times_chance(best, how):
    found = v.not_learning(run_of([epoch(1, best, best)]))
    assert found.message == f"best validation accuracy {best:.1%} after 1 epoch(s), chance is 10%: the network is {how}"


def test_without_validation_training_accuracy_is_judged():
    found = v.not_learning(run_of([epoch(1, None, 0.12)]))
    assert found.evidence["source"] == "training" and found.evidence["final_accuracy"] == 0.12


def test_still_improving_by_half_a_point_is_underfitting():
    found = v.underfitting(run_of([epoch(1, 0.970, 0.97), epoch(2, 0.976, 0.975)]))
    assert found.severity == "info"
    assert (
        found.message == "validation accuracy rose 0.6 points in the last epoch, to 97.6%: still improving when training stopped"
    )


def test_warnings_come_first_and_verdicts_are_plain_data():
    run = run_of([epoch(1, 0.30, 0.30), epoch(2, 0.45, 0.45)], healthy_probes(dead=0.5))
    found = verdicts(run)
    assert [(f.code, f.severity) for f in found] == [
        ("not_learning", "warning"),
        ("dead_units", "warning"),
        ("underfitting", "info"),
    ]
    assert Verdict(**found[1].as_dict()) == found[1]
    assert str(found[1]).endswith(": lower train.lr (now 0.002), use model.activation: gelu or silu, or model.init: kaiming")


def test_layer_spans_read_like_a_person_counts():
    assert v._layer_span(["hidden.0", "hidden.1", "hidden.2"], 8) == "layers 1-3 of 8"
    assert v._layer_span(["hidden.0", "hidden.2"], 4) == "layers 1, 3 of 4"


def test_load_run_reads_a_run_folder_or_a_checkpoint_in_it(finished_run):
    run = load_run(finished_run)
    assert run.name == "run" and run.epochs_done == 2 and run.checkpoint == finished_run / "best.pt"
    assert [m.epoch for m in run.metrics] == [1, 2] and run.health and run.steps
    assert run.config.model.width == 32
    assert load_run(finished_run / "last.pt").checkpoint == finished_run / "last.pt"


def train_real(tmp_path: Path, **sections) -> RunRecord:
    """A run on the real MNIST on one CPU thread, judged."""
    require_real_data()
    raw = {"seed": 0, "data": {"root": str(REAL_DATA)}, **sections}
    raw["train"] = {"device": "cpu", "threads": 1, **sections.get("train", {})}
    train(Config.model_validate(raw), tmp_path / "run")
    return load_run(tmp_path / "run")


@pytest.mark.slow
def test_an_8_layer_sigmoid_net_gets_vanishing_gradients_in_its_first_layers(tmp_path):
    run = train_real(tmp_path, model={"depth": 8, "width": 64, "activation": "sigmoid"}, train={"epochs": 2})
    found = {f.code: f for f in verdicts(run)}
    vanishing = found["vanishing_gradients"]
    assert vanishing.layers[:4] == ["hidden.0", "hidden.1", "hidden.2", "hidden.3"]
    first = vanishing.evidence["grad_ratio_median_first_epoch"]
    assert all(first[f"hidden.{i}"] < 1e-3 for i in range(4)), first
    assert first["hidden.0"] < 1e-4  # the first layer gets under 1/10000 of the output layer's gradient
    assert vanishing.message.startswith("layers 1-")
    assert found["not_learning"].evidence["best_accuracy"] < 0.5


@pytest.mark.slow
def test_the_default_recipe_gets_no_warning(tmp_path):
    # configs/default.yaml in 2 epochs instead of 4 (the one-cycle schedule fits itself to them): seconds, not minutes.
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "default.yaml")
    sections = cfg.model_dump(mode="json")
    sections["data"]["root"] = str(REAL_DATA)
    sections["train"]["epochs"] = 2
    run = train_real(tmp_path, data=sections["data"], model=sections["model"], train=sections["train"])
    found = verdicts(run)
    assert [f for f in found if f.severity == "warning"] == [], found
    final = run.health[-1]
    assert all(layer.dead_fraction < 0.1 for layer in final.hidden), final
    ratios = [layer.grad_ratio for r in run.health for layer in r.hidden]
    assert min(ratios) > 0.1 and max(ratios) < 10, ratios
    gap = run.metrics[-1].train_accuracy - run.metrics[-1].val_accuracy
    assert gap < v.OVERFIT_GAP and run.metrics[-1].val_accuracy > 0.97


@pytest.mark.slow
def test_a_relu_net_at_a_large_learning_rate_gets_dead_units(tmp_path):
    run = train_real(tmp_path, model={"depth": 3, "width": 128}, train={"epochs": 1, "lr": 0.05})
    found = {f.code: f for f in verdicts(run)}
    dead = found["dead_units"]
    assert dead.layers == ["hidden.0", "hidden.1", "hidden.2"]
    assert all(0.25 <= fraction < 0.7 for fraction in dead.evidence["dead_fraction"].values()), dead.evidence
    assert "lower train.lr (now 0.05)" in dead.suggestion
    assert run.metrics[-1].val_accuracy > 0.9  # it still learns, with a third of its units wasted


def test_a_truth_table_net_that_ends_at_chance_is_not_learning_whatever_it_reached_on_the_way():
    cfg = Config.model_validate({"data": {"dataset": "xor"}, "model": {"depth": 0}})
    run = RunRecord(RunDir(Path("run")), cfg, [epoch(100, None, 0.75), epoch(200, None, 0.5)], [], [], None)
    [found] = verdicts(run)
    assert found.message == "final training accuracy 50.0% after 200 epoch(s), chance is 50%: the network is not learning"
    assert found.suggestion.endswith("cannot separate XOR's points: add a hidden layer (model.depth: 1)")
