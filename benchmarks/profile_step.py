"""Where a training step's time goes: data, forward (with the loss), backward, optimizer, and the rest of the loop.

    python benchmarks/profile_step.py [--steps 300] [--threads N]

Each phase of `mnist train`'s step is timed on its own (the CPU runs them synchronously) with the package's own model,
optimizer, schedule and loss on synthetic uint8 images, the gradients by hand where the loop computes them so
(training/backprop.py); "loop" is a whole epoch of the real loop per step, so
"other" (loop minus the phases) is the loop's own Python.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from stats import summarize  # noqa: E402

# batch -> config: the tutorials' batch 15, the classic batch 64, the default batch 256
CASES = {15: "configs/classic-64x3.yaml", 64: "configs/classic-256.yaml", 256: "configs/default.yaml"}


def phases(config: str, steps: int, threads: int | None) -> dict[str, dict]:
    """Microseconds per step of each phase, summarised over `steps` steps."""
    import torch

    from mnist_cli.config import load_config
    from mnist_cli.data.datasets import Normalization
    from mnist_cli.data.loader import to_inputs
    from mnist_cli.devices import default_threads
    from mnist_cli.losses import make_loss
    from mnist_cli.model import build_model, parameter_count
    from mnist_cli.optim import make_optimizer, make_scheduler, step_function
    from mnist_cli.training import backprop

    cfg = load_config(REPO / config)
    torch.set_num_threads(threads or default_threads(cfg.train.batch_size, parameter_count(cfg.model, 784, 10)))
    torch.set_flush_denormal(True)  # as a run does (training/state.py)
    torch.manual_seed(0)
    model = build_model(cfg.model, 784, 10)
    optimizer = make_optimizer(model, cfg.train)
    scheduler, update = make_scheduler(optimizer, cfg.train, steps), step_function(optimizer)
    if backprop.applies(cfg):  # the gradients as the loop computes them
        gradients = backprop.Backprop(model, cfg.model.activation)
    else:
        gradients = backprop.Autograd(model, make_loss(cfg.train), contextlib.nullcontext())
    b = cfg.train.batch_size
    images, labels = torch.randint(0, 256, (b * 64, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (b * 64,))
    norm = Normalization(0.1307, 0.3081)
    times: dict[str, list[float]] = {k: [] for k in ("data", "forward", "backward", "optimizer", "schedule")}
    for i in range(steps + 20):
        t0 = time.perf_counter()
        index = torch.randint(0, len(images), (b,))
        x, y = to_inputs(images[index], norm), labels[index]
        t1 = time.perf_counter()
        gradients.loss(x, y)
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)  # as the loop does
        gradients.backward()
        t3 = time.perf_counter()
        update()
        t4 = time.perf_counter()
        scheduler.step()
        t5 = time.perf_counter()
        if i >= 20:
            for k, a, z in zip(times, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5), strict=True):
                times[k].append(z - a)
    return {k: summarize([t * 1e6 for t in v]) for k, v in times.items()}


def loop_step(config: str, threads: int | None) -> dict:
    """Microseconds per step of two epochs of the real loop (`mnist_cli.training.loop.train`), validation excluded."""
    from mnist_cli.config import load_config
    from mnist_cli.record import EpochMetrics, read_events
    from mnist_cli.training.loop import train

    overrides = ["train.epochs=2", "train.health=false"] + ([f"train.threads={threads}"] if threads else [])
    with tempfile.TemporaryDirectory() as d:
        train(load_config(REPO / config, overrides), Path(d) / "run")
        epochs = [r for r in read_events(Path(d) / "run" / "events.jsonl") if isinstance(r, EpochMetrics)]
    return summarize([e.seconds / e.step * 1e6 for e in epochs])


def profile(steps: int = 300, threads: int | None = None) -> dict[int, dict]:
    """{batch: {phase: us per step}} with 'loop' (the real loop's us per step) and 'other' (loop minus the phases' medians)."""
    out = {}
    for batch, config in CASES.items():
        p = phases(config, steps, threads)
        p["loop"] = loop_step(config, threads)
        p["other"] = {"median": p["loop"]["median"] - sum(v["median"] for v in p.values() if v is not p["loop"]), "n": 1}
        out[batch] = p
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.steps < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--steps and --threads take a count of at least 1")
    print(json.dumps(profile(args.steps, args.threads), indent=1))
