"""What TensorBoard (train.tensorboard, on by default) costs: configs/default.yaml trained with it on and off.

    .venv/bin/python benchmarks/tb_cost.py [--pairs 5] [--epochs 2]

Runs alternate on/off, off/on, ... (each pair in the other order than the one before), each a fresh process writing
its own run folder. Prints, for on and off, the median with min and max of: seconds per epoch (the run's record,
first epoch apart: it warms up), train_seconds, and the whole command's wall time; then the paired overheads
(on / off - 1 of each pair) with their median, min and max. bench.py can call `tensorboard_overhead()`.
On a busy machine those spread wide; `tracker_cost()` (printed first) is steadier: one epoch's records of
configs/default.yaml (50 step reports, 4 probes, the epoch record) fed to the Tracker in this process, timed against
the model's training step.
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


def tracker_cost(epochs: int = 5) -> dict[str, float]:
    """Seconds the Tracker spends per epoch inside the epoch's clock (steps and probes) and at its end, and per step."""
    import statistics

    import torch
    import torch.nn.functional as F

    from mnist_cli.config import load_config
    from mnist_cli.model import build_model
    from mnist_cli.record import HealthRecord, LayerHealth, StepRecord
    from mnist_cli.tracking import Tracker
    from mnist_cli.training.rundir import RunDir

    cfg = load_config(REPO / "configs" / "default.yaml")
    model, steps = build_model(cfg.model, 784, 10), 215  # 55,000 images at batch 256
    optimizer, x, y = torch.optim.Adam(model.parameters()), torch.randn(256, 28, 28), torch.randint(0, 10, (256,))

    def step() -> float:
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - t0

    step_s = statistics.median([step() for _ in range(50)][10:])
    layers = [LayerHealth(n, 512, 1.0, 0.1, 0.5, 0.01, 0.1, 0.2, 0.0) for n in ("hidden.0", "hidden.1", "output")]
    inside, at_end = [], []
    with tempfile.TemporaryDirectory() as work:
        tracker = Tracker(cfg, RunDir(Path(work)), model, 0, None, lambda e: None)
        for epoch in range(1, epochs + 1):
            g0, t0 = (epoch - 1) * steps, time.perf_counter()
            for k in range(1, 51):
                tracker(StepRecord(epoch, 4 * k, g0 + 4 * k, 0.5, 1e-3))
            for k in range(1, 5):
                tracker(HealthRecord(epoch, 54 * k, g0 + 54 * k, steps, k == 4, 0.5, "relu", 512, layers))
            t1 = time.perf_counter()
            tracker(EpochMetrics(epoch, 0.5, 0.4, 0.9, 1e-3, 1.0, 5e4, 0, 0.9, steps, g0 + steps, 55_000))
            inside.append(t1 - t0)
            at_end.append(time.perf_counter() - t1)
        tracker.close(None)
    return {"step": step_s, "epoch": steps * step_s, "inside": statistics.median(inside), "at_end": statistics.median(at_end)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    if args.pairs < 1 or args.epochs < 1:
        parser.error("--pairs and --epochs must be at least 1")
    cost = tracker_cost()
    print(f"in process: a training step {cost['step'] * 1e3:.2f} ms, so an epoch ~{cost['epoch']:.2f} s; the Tracker per epoch")
    for key in ("inside", "at_end"):
        print(f"  {key} the epoch's clock: {cost[key] * 1e3:.2f} ms = {cost[key] / cost['epoch']:.2%} of the epoch")
    found = tensorboard_overhead(args.pairs, args.epochs)
    print(f"configs/default.yaml, {args.epochs} epochs a run, {args.pairs} pairs: median (min-max)")
    for key in found["on"]:
        on, off, paired = found["on"][key], found["off"][key], sorted(found["paired"][key])
        overhead = f"{paired[len(paired) // 2]:+.1%} ({paired[0]:+.1%} to {paired[-1]:+.1%})"
        print(f"{key:>14}: on {spread(on)} s, off {spread(off)} s, paired overhead {overhead}")


if __name__ == "__main__":
    main()
