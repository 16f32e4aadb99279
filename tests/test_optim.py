"""The training step's gradients and optimizer step: backpropagation by hand and a fused Adam/AdamW kernel called
directly, each bit-identical to torch's own."""

import warnings

import pytest
import torch
from conftest import assert_identical, epoch_records, train_run

from mnist_cli.config import Config, ModelConfig, TrainConfig
from mnist_cli.model import build_model
from mnist_cli.optim import make_optimizer, make_scheduler, step_function
from mnist_cli.training import backprop, loop


def trained(cfg: TrainConfig, direct: bool, resume_at: int = 0) -> dict[str, torch.Tensor]:
    """Weights after 12 steps on seeded data, with a cosine schedule; the optimizer re-made from its state at
    `resume_at`, as a resumed run does."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(depth=2, width=16), 784, 10)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, 12)
    step = step_function(optimizer) if direct else optimizer.step
    data = torch.Generator().manual_seed(1)
    for i in range(12):
        if i == resume_at and i:
            state = optimizer.state_dict()
            optimizer.load_state_dict(state)  # replaces the param group the step reads its lr from
        x, y = torch.randn(8, 784, generator=data), torch.randint(0, 10, (8,), generator=data)
        for p in model.parameters():
            p.grad = None
        torch.nn.functional.cross_entropy(model(x), y).backward()
        step()
        scheduler.step()
    return model.state_dict()


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_direct_fused_step_is_bit_identical_to_torchs(optimizer):
    cfg = TrainConfig(optimizer=optimizer, lr=1e-2, weight_decay=0.05, schedule="cosine")
    model = build_model(ModelConfig(depth=1, width=4), 784, 10)
    assert step_function(make_optimizer(model, cfg)).__name__ == "step"  # the direct call, not torch's bound method
    expected = trained(cfg, direct=False)
    for resume_at in (0, 5):
        got = trained(cfg, direct=True, resume_at=resume_at)
        assert all(torch.equal(got[k], expected[k]) for k in expected), resume_at


def test_other_optimizers_keep_torchs_step():
    model = build_model(ModelConfig(depth=1, width=4), 784, 10)
    optimizer = make_optimizer(model, TrainConfig(optimizer="sgd"))
    assert step_function(optimizer) == optimizer.step


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_run_steps_the_optimizer_the_schedule_saw(optimizer, tmp_path, synthetic_root):
    # torch's schedule wraps optimizer.step to check the order of the two; a step taken before that wrapping warns
    # "Detected call of `lr_scheduler.step()` before `optimizer.step()`" on every run's output.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = train_run(tmp_path / "run", synthetic_root, train={"optimizer": optimizer, "epochs": 1})
    assert (run / "result.json").exists()


@pytest.mark.parametrize(("activation", "loss"), [("relu", "cross_entropy"), ("sigmoid", "nll"), ("tanh", "cross_entropy")])
def test_backprop_by_hand_trains_bit_for_bit_as_autograd(activation, loss, tmp_path, synthetic_root, monkeypatch):
    sections = {"model": {"depth": 2, "width": 16, "activation": activation}}
    sections["train"] = {"epochs": 2, "loss": loss, "label_smoothing": 0.0, "health_probes_per_epoch": 3}
    backward, calls = backprop.Backprop.backward, []
    monkeypatch.setattr(backprop.Backprop, "backward", lambda self: calls.append(1) or backward(self))
    by_hand = train_run(tmp_path / "by-hand", synthetic_root, **sections)
    steps = len(calls)
    monkeypatch.setattr(loop, "backprop_applies", lambda cfg: False)
    by_autograd = train_run(tmp_path / "autograd", synthetic_root, **sections)
    assert steps == 2 * epoch_records(by_hand)[0].step and len(calls) == steps  # every step by hand, then none
    assert_identical(by_hand, by_autograd)  # weights, Adam's moments, every loss, gradient norm and accuracy


def test_backprop_by_hand_is_only_for_what_it_computes():
    def applies(**fields) -> bool:
        model = {k: v for k, v in fields.items() if k in ModelConfig.model_fields}
        return backprop.applies(Config(model=model, train={k: v for k, v in fields.items() if k not in model}))

    assert applies(activation="relu", label_smoothing=0.0) and applies(activation="tanh", loss="nll", label_smoothing=0.0)
    refused = [{"label_smoothing": 0.1}, {"loss": "mse"}, {"activation": "gelu"}, {"dropout": 0.1}, {"norm": "batch"}]
    refused += [{"norm": "layer"}, {"compile": True}, {"amp": True}]
    assert not any(applies(**{"label_smoothing": 0.0, **case}) for case in refused)
