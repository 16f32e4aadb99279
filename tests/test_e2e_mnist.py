"""End to end on the real MNIST: `mnist train` then `mnist eval`, with an accuracy gate."""

from __future__ import annotations

import json

import pytest
from conftest import REAL_DATA, invoke, require_real_data, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def real_data(monkeypatch):
    require_real_data()
    monkeypatch.setenv("MNIST_DATA_DIR", str(REAL_DATA))


def test_short_training_reaches_97_percent_and_eval_agrees(real_data, tmp_path):
    cfg = write_config(
        tmp_path / "short.yaml",
        data={"val_size": 5000},
        model={"depth": 2, "width": 256},
        train={"epochs": 2, "batch_size": 256, "lr": 0.002, "schedule": "onecycle", "device": "cpu", "threads": None},
    )
    r = invoke("train", "-c", str(cfg), "--json", "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["test_accuracy"] >= 0.97, result
    assert result["val_accuracy"] >= 0.96, result

    r = invoke("eval", result["checkpoint"], "--json")
    assert r.exit_code == 0, r.output
    evaluation = json.loads(r.stdout)
    assert evaluation["n"] == 10_000
    assert evaluation["accuracy"] == pytest.approx(result["test_accuracy"])
    assert min(evaluation["per_class"]) > 0.9
