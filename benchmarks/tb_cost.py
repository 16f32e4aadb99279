"""What TensorBoard (train.tensorboard, on by default) costs: configs/default.yaml trained with it on and off.

    .venv/bin/python benchmarks/tb_cost.py [--pairs 5] [--epochs 2]

Runs alternate on/off, off/on, ... (each pair in the other order than the one before), each a fresh process writing
its own run folder. Prints, for on and off, the median with min and max of: seconds per epoch (the run's record,
first epoch apart: it warms up), train_seconds, and the whole command's wall time; then the paired overheads
(on / off - 1 of each pair) with their median, min and max. bench.py can call `tensorboard_overhead()`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mnist_cli.record import EpochMetrics, read_run_records  # noqa: E402


def one_run(tensorboard: bool, epochs: int, out: Path) -> dict[str, float]:
    """One `mnist train` of configs/default.yaml: its epochs' seconds, train_seconds and wall time."""
    cmd = [sys.executable, "-m", "mnist_cli", "train", "-c", "configs/default.yaml", "--epochs", str(epochs)]
    cmd += ["--set", f"train.tensorboard={str(tensorboard).lower()}", "--out", str(out), "--overwrite", "-q", "--json"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    epochs_s = [r.seconds for r in read_run_records(out) if isinstance(r, EpochMetrics)]
    return {"first_epoch": epochs_s[0], "later_epochs": sum(epochs_s[1:]) / max(1, len(epochs_s) - 1),
            "train_seconds": json.loads(done.stdout)["train_seconds"], "wall": wall}  # fmt: skip


def spread(values: list[float]) -> str:
    s = sorted(values)
    return f"{s[len(s) // 2]:.4g} ({s[0]:.4g}-{s[-1]:.4g})"


def tensorboard_overhead(pairs: int = 5, epochs: int = 2) -> dict[str, dict[str, list[float]]]:
    """Measurements of `pairs` on/off pairs, in alternating order: {'on': {measure: [...]}, 'off': ..., 'paired': ...}."""
    found: dict[str, dict[str, list[float]]] = {"on": {}, "off": {}, "paired": {}}
    with tempfile.TemporaryDirectory() as work:
        for i in range(pairs):
            runs = {}
            for on in (True, False) if i % 2 == 0 else (False, True):
                runs[on] = one_run(on, epochs, Path(work) / f"tb-{on}")
            for key in runs[True]:
                found["on"].setdefault(key, []).append(runs[True][key])
                found["off"].setdefault(key, []).append(runs[False][key])
                found["paired"].setdefault(key, []).append(runs[True][key] / runs[False][key] - 1)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    found = tensorboard_overhead(args.pairs, args.epochs)
    print(f"configs/default.yaml, {args.epochs} epochs a run, {args.pairs} pairs: median (min-max)")
    for key in found["on"]:
        on, off, paired = found["on"][key], found["off"][key], sorted(found["paired"][key])
        overhead = f"{paired[len(paired) // 2]:+.1%} ({paired[0]:+.1%} to {paired[-1]:+.1%})"
        print(f"{key:>14}: on {spread(on)} s, off {spread(off)} s, paired overhead {overhead}")


if __name__ == "__main__":
    main()
