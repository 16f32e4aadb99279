"""The benchmark's pure helpers: summaries and FLOP counts (no timing here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from stats import fmt, matmul_flops, mlp_parameters, summarize, train_flops_per_sample


def test_summarize_gives_median_min_max_and_count():
    assert summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert summarize([4.0, 1.0, 2.0, 3.0])["median"] == 2.5
    with pytest.raises(ValueError):
        summarize([])


def test_flop_counts_of_the_default_mlp():
    sizes = [784, 512, 512, 10]
    assert mlp_parameters(sizes) == 669_706  # the count `mnist train` reports for configs/default.yaml
    assert train_flops_per_sample(sizes) == 6 * 669_706
    # Matmuls leave out the biases: 6 * B * (784*512 + 512*512 + 512*10).
    assert matmul_flops(256, sizes) == 6 * 256 * (784 * 512 + 512 * 512 + 512 * 10)


def test_fmt_is_median_then_range():
    assert fmt({"median": 0.5, "min": 0.25, "max": 1.0, "n": 3}, 1, 100) == "50.0 (25.0-100.0)"
