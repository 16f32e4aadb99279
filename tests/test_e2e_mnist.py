"""End to end on the real MNIST: `mnist train` (conftest's real_checkpoint, gated at 97%) then `mnist eval`."""

from __future__ import annotations

import json

import pytest
from conftest import REAL_DATA, invoke

from mnist_cli.record import read_result

pytestmark = pytest.mark.slow


def test_short_training_reaches_97_percent_and_eval_agrees(real_checkpoint, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(REAL_DATA))
    r = invoke("eval", real_checkpoint, "--json")
    assert r.exit_code == 0, r.output
    evaluation = json.loads(r.stdout)
    assert evaluation["n"] == 10_000
    assert evaluation["accuracy"] == pytest.approx(read_result(real_checkpoint.parent).test_accuracy)
    assert evaluation["accuracy"] >= 0.97 and min(evaluation["per_class"]) > 0.9
