"""The benchmark suite behind README "Performance": run with `make bench` (or `--quick` while developing).

    .venv/bin/python benchmarks/bench.py [--quick] [--sections peers,profile,loaded,tta,startup,serve,health,sweep]

Measures, on this machine, in one run: the peers (the tutorials' loop and, with the bench extra, Lightning both
ways) against `mnist train` on the classic recipes, each as a share of the matmul rate measured in the same run;
compute efficiency against this machine's matrix-multiply GFLOP/s, time to accuracy of every shipped
recipe (whole command, process start to exit), startup and inference wall times, peak RSS,
`mnist serve` under load (500 requests from 8 clients), what recording layer health (train.health) costs per epoch,
`mnist sweep` against a shell loop of `mnist train` with the same thread budget, where a step's time goes at batch
15, 64 and 256, and epochs on a machine two busy-loop processes load, against the same epochs quiet.
Smoke run (tiny sizes, results outside the tree): --quick --peer-images 1000 --out /tmp/bench
Every figure is a median of >= 3 runs with min and max (--quick: fewer). Each section holds
/tmp/mnist-cpu.lock (flock) while it computes, so measurements on a shared machine are not disturbed.
Writes benchmarks/results/<host>-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import importlib.util
import itertools
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from report import table  # noqa: E402
from serve_load import serve_load  # noqa: E402
from stats import matmul_flops, summarize, train_flops_per_sample  # noqa: E402

PYTHON = sys.executable
MNIST = [PYTHON, "-m", "mnist_cli"]
DEFAULT_SIZES = [784, 512, 512, 10]  # configs/default.yaml
# Shipped recipe -> the accuracy it is meant to reach.
RECIPES = {"default": 0.980, "fast-98.5": 0.985, "mlp-99": 0.990, "mlp-99.3": 0.993}
CLASSICS = {"classic-256": ([784, 256, 10], 64), "classic-64x3": ([784, 64, 64, 64, 10], 15)}  # recipe -> (sizes, batch)
PEERS = ("tutorial", "lightning", "lightning-tensors")  # benchmarks/naive.py --trainer
LIGHTNING_RECIPES = ("classic-256",)  # the tutorials' 784-256-10, Adam 1e-3, batch 64 (Lightning needs the bench extra)


@contextlib.contextmanager
def cpu_lock(path: str) -> Iterator[None]:
    """Hold the machine's shared CPU lock (if any) while a group of measurements runs."""
    if not path:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) measured with os.wait4 on this very child."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read()[-2000:]}")
        return wall, usage.ru_maxrss / 1024, out.read()


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def metrics_of(run_dir: Path) -> list:
    """The run's EpochMetrics records."""
    from mnist_cli.record import EpochMetrics, read_run_records

    return [r for r in read_run_records(run_dir) if isinstance(r, EpochMetrics)]


def unpacked_root() -> Path:
    """A folder holding MNIST/raw/ unpacked, as torchvision's MNIST(download=False) needs."""
    from mnist_cli.config import default_data_root
    from mnist_cli.data.datasets import load_dataset
    from mnist_cli.data.files import cache_root

    root = default_data_root()
    load_dataset("mnist", root)  # unpacks into the cache if `root` holds only archives
    return root if (root / "MNIST/raw/train-images-idx3-ubyte").is_file() else cache_root()


def peers(args, work: Path) -> dict:
    """The peers (benchmarks/naive.py) and `mnist train` on the classic recipes, seconds per epoch, and each one's share
    of this machine's fp32 matmul rate on the recipe's own matmuls, measured in the same lock."""
    root = unpacked_root()
    lightning = importlib.util.find_spec("lightning") is not None
    out: dict = {}
    for recipe, (sizes, batch) in CLASSICS.items():
        peers = [p for p in PEERS if p == "tutorial" or (lightning and recipe in LIGHTNING_RECIPES)]
        with cpu_lock(args.lock):
            rate = summarize(matmul_gflops(batch, sizes, args.reps))
            rows = {p: peer_run(args, recipe, p, root) for p in peers}
            rows["mnist train"] = mnist_run(args, recipe, work / f"peers-{recipe}")
        flops = train_flops_per_sample(sizes)
        ours = rows["mnist train"]["samples_per_second"]["median"]
        for row in rows.values():
            speed = row["samples_per_second"]["median"]
            row["fraction_of_matmul"] = speed * flops / (rate["median"] * 1e9)
            row["mnist_speedup_per_sample"] = ours / speed
        out[recipe] = {
            "batch_size": batch,
            "model": "-".join(map(str, sizes)),
            "epochs": args.epochs,
            "matmul_gflops": rate,
            # The arithmetic alone: 6 x parameters per sample, for the 55,000 images of an `mnist train` epoch.
            "arithmetic_seconds_per_epoch": 55_000 * flops / (rate["median"] * 1e9),
            "lightning": "measured" if lightning else 'not installed (pip install "mnist-cli[bench]")',
            "trainers": rows,
        }
    return out


def peer_run(args, recipe: str, trainer: str, root: Path) -> dict:
    """One peer's run of `args.epochs` epochs: seconds per epoch, samples per second, test accuracy."""
    cmd = [PYTHON, str(HERE / "naive.py"), "--recipe", recipe, "--trainer", trainer, "--epochs", str(args.epochs)]
    cmd += ["--root", str(root)] + (["--limit", str(args.peer_images)] if args.peer_images else [])
    result = json.loads(run_measured(cmd, env_with())[2])
    seconds = result["epoch_seconds"]
    return {
        "seconds_per_epoch": summarize(seconds),
        "samples_per_epoch": result["samples_per_epoch"],
        "samples_per_second": summarize([result["samples_per_epoch"] / s for s in seconds]),
        "test_accuracy": result["test_accuracy"],
    }


def mnist_run(args, recipe: str, run_dir: Path) -> dict:
    """`mnist train -c configs/RECIPE.yaml` for `args.epochs` epochs, per epoch from its metrics."""
    cmd = [*MNIST, "train", "-c", f"configs/{recipe}.yaml", "--epochs", str(args.epochs), "--out", str(run_dir)]
    result = json.loads(run_measured([*cmd, "-q", "--json"], env_with())[2])
    epochs = metrics_of(run_dir)
    return {
        "seconds_per_epoch": summarize([m.seconds for m in epochs]),
        "samples_per_epoch": round(epochs[0].samples_per_second * epochs[0].seconds),
        "samples_per_second": summarize([m.samples_per_second for m in epochs]),
        "test_accuracy": result["test_accuracy"],
    }


def matmul_gflops(batch: int, sizes: list[int], reps: int) -> list[float]:
    """This machine's float32 GFLOP/s on the exact forward and backward matmuls of one training step."""
    import torch

    weights = [torch.randn(o, i) for i, o in pairwise(sizes)]
    inputs = [torch.randn(batch, i) for i in sizes[:-1]]
    grads = [torch.randn(batch, o) for o in sizes[1:]]

    def step() -> None:
        for w, x, g in zip(weights, inputs, grads, strict=True):
            x @ w.t(), g @ w, g.t() @ x

    for _ in range(5):
        step()
    results = []
    for _ in range(reps):
        n = 50
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        results.append(matmul_flops(batch, sizes) * n / (time.perf_counter() - t0) / 1e9)
    return results


def time_to_accuracy(args, work: Path) -> dict:
    """Whole-command wall seconds of each shipped recipe, and what it reached."""
    out = {}
    for recipe, target in RECIPES.items():
        if args.quick and recipe.startswith("mlp-"):
            continue
        walls, accs, rss, sps = [], [], [], []
        for rep in range(args.reps):
            run_dir = work / f"tta-{recipe}-{rep}"
            with cpu_lock(args.lock):
                wall, peak, text = run_measured(
                    [*MNIST, "train", "-c", f"configs/{recipe}.yaml", "--out", str(run_dir), "-q", "--json"], env_with()
                )
            result = json.loads(text)
            walls.append(wall)
            accs.append(result["test_accuracy"])
            rss.append(peak)
            sps += [m.samples_per_second for m in metrics_of(run_dir)]
        out[recipe] = {
            "target": target,
            "wall_seconds": summarize(walls),
            "test_accuracy": summarize(accs),
            "reached": all(a >= target for a in accs),
            "peak_rss_mib": summarize(rss),
            "samples_per_second": summarize(sps),
        }
    return out


def efficiency(args, tta: dict) -> dict:
    """Training throughput of configs/default.yaml (784-512-512-10, batch 256) against the matmul roofline."""
    import torch

    with cpu_lock(args.lock):
        peak = matmul_gflops(256, DEFAULT_SIZES, args.reps)
    sps = tta["default"]["samples_per_second"]
    achieved = {k: v * train_flops_per_sample(DEFAULT_SIZES) / 1e9 for k, v in sps.items() if k != "n"}
    achieved["n"] = sps["n"]
    return {
        "model": "784-512-512-10",
        "batch_size": 256,
        "threads": torch.get_num_threads(),
        "samples_per_second": sps,
        "achieved_gflops": achieved,
        "matmul_gflops": summarize(peak),
        "fraction_of_matmul": achieved["median"] / summarize(peak)["median"],
    }


def startup_and_inference(args, work: Path) -> dict:
    """`mnist --help`, `mnist predict` on one image and `mnist eval` of the 10k test images, wall and compute."""
    import torch
    from PIL import Image

    from mnist_cli.config import default_data_root
    from mnist_cli.data.datasets import load_dataset
    from mnist_cli.evaluate import evaluate
    from mnist_cli.inference.trained import load_trained

    ckpt = work / "tta-default-0" / "best.pt"
    if not ckpt.is_file():
        with cpu_lock(args.lock):
            run_measured([*MNIST, "train", "-c", "configs/default.yaml", "--out", str(ckpt.parent), "-q"], env_with())
    _, test = load_dataset("mnist", default_data_root())
    image = work / "digit.png"
    Image.fromarray(test.images[0].numpy()).save(image)
    reps = max(args.reps, 5)
    mnist_bin = str(Path(PYTHON).parent / "mnist")
    entry = [mnist_bin] if Path(mnist_bin).is_file() else MNIST
    out: dict = {}
    with cpu_lock(args.lock):
        out["help_wall_seconds"] = summarize([run_measured([*entry, "--help"], env_with())[0] for _ in range(reps)])
        out["predict_one_wall_seconds"] = summarize(
            [run_measured([*entry, "predict", str(image), "-m", str(ckpt), "--json"], env_with())[0] for _ in range(reps)]
        )
        evals = [run_measured([*entry, "eval", str(ckpt), "--json"], env_with())[0] for _ in range(reps)]
        out["eval_10k_wall_seconds"] = summarize(evals)
        trained = load_trained(ckpt)
        model, norm = trained.model, trained.normalization
        compute = []
        for _ in range(reps):
            t0 = time.perf_counter()
            evaluate(model, test, norm, 10)
            compute.append(time.perf_counter() - t0)
        out["eval_10k_compute_seconds"] = summarize(compute)
    out["threads"] = torch.get_num_threads()
    return out


# The same runs both ways: a 2x3 grid x 2 seeds of configs/tiny.yaml-sized nets, 2 epochs each (--quick: 2 runs, 1 epoch).
SWEEP_GRID = {"model.depth": [1, 2], "model.width": [32, 64, 128]}
SWEEP_SEEDS, SWEEP_EPOCHS = 2, 2
QUICK_SWEEP_GRID, QUICK_SWEEP_SEEDS, QUICK_SWEEP_EPOCHS = {"model.depth": [1], "model.width": [32, 64]}, 1, 1


def sweep_vs_loop(args, work: Path) -> dict:
    """`mnist sweep` against a shell loop of `mnist train` on the same runs, wall seconds, with the same thread budget:
    the sweep as `threads` workers of one thread each, the loop one run at a time on `threads` threads."""
    grid, seeds, epochs = (
        (QUICK_SWEEP_GRID, QUICK_SWEEP_SEEDS, QUICK_SWEEP_EPOCHS) if args.quick else (SWEEP_GRID, SWEEP_SEEDS, SWEEP_EPOCHS)
    )
    threads = args.threads or len(os.sched_getaffinity(0))
    base = ["-c", "configs/tiny.yaml", "--epochs", str(epochs)]
    cells = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    loop_lines = []
    for cell in cells:
        for seed in range(seeds):
            name = ",".join(f"{k}={v}" for k, v in cell.items()) + f",seed={seed}"
            words = [*MNIST, "train", *base, *(w for k, v in cell.items() for w in ("--set", f"{k}={v}")), "--seed", str(seed)]
            words += ["--set", f"train.threads={threads}", "-q", "--json", "--out", f"{{out}}/{name}"]
            loop_lines.append(f"{shlex.join(words)} > {{out}}/{shlex.quote(name)}.json || exit 1")
    flags = [w for k, values in grid.items() for w in ("--grid", f"{k}={','.join(map(str, values))}")]
    flags += ["--seeds", str(seeds), "--jobs", str(threads), "--set", "train.threads=1", "-q", "--json"]
    sweeps, loops, sweep_accs, loop_accs = [], [], [], []
    for rep in range(args.reps):
        with cpu_lock(args.lock):
            wall, _, text = run_measured([*MNIST, "sweep", *base, *flags, "--out", str(work / f"sweep-{rep}")], env_with())
            sweeps.append(wall)
            sweep_accs += [r["test_accuracy"] for r in json.loads(text)["runs"]]
            out = work / f"loop-{rep}"
            out.mkdir()
            wall, _, _ = run_measured(["bash", "-c", "\n".join(loop_lines).replace("{out}", shlex.quote(str(out)))], env_with())
            loops.append(wall)
            loop_accs += [json.loads(p.read_text())["test_accuracy"] for p in sorted(out.glob("*.json"))]
    return {
        "runs": len(loop_lines),
        "grid": grid,
        "seeds": seeds,
        "epochs": epochs,
        "threads": threads,
        "sweep_wall_seconds": summarize(sweeps),
        "loop_wall_seconds": summarize(loops),
        "speedup": summarize(loops)["median"] / summarize(sweeps)["median"],
        "sweep_mean_test_accuracy": sum(sweep_accs) / len(sweep_accs),
        "loop_mean_test_accuracy": sum(loop_accs) / len(loop_accs),
    }


def serve_section(args, work: Path) -> dict:
    """500 POST /api/predict of real test-digit PNGs from 8 concurrent clients against `mnist serve` on 127.0.0.1."""
    from mnist_cli.config import default_data_root
    from mnist_cli.data.datasets import load_dataset

    ckpt = work / "tta-default-0" / "best.pt"
    if not ckpt.is_file():  # latency depends on the architecture, not on how long it trained
        ckpt = work / "serve-default" / "best.pt"
        with cpu_lock(args.lock):
            train = [*MNIST, "train", "-c", "configs/default.yaml", "--epochs", "1", "--set", "train.threads=1"]
            train += ["--out", str(ckpt.parent), "-q"]
            run_measured(train, env_with())
    _, test = load_dataset("mnist", default_data_root())
    with cpu_lock(args.lock):
        return serve_load(ckpt, test.images[:100].numpy(), env_with(), requests=500, clients=8)


def health_overhead(args, work: Path) -> dict:
    """configs/default.yaml (2 epochs a run; --quick: 1) with train.health on and off, run after run in alternating order, seconds
    per epoch; and the probe alone, timed in process against one training step (steady even when the machine is not)."""
    seconds: dict[str, list[float]] = {"true": [], "false": []}
    paired, epochs = [], 1 if args.quick else 2
    for rep in range(2 if args.quick else 5):
        totals = {}
        for value in ("true", "false") if rep % 2 == 0 else ("false", "true"):
            run_dir = work / f"health-{value}-{rep}"
            cmd = [*MNIST, "train", "-c", "configs/default.yaml", "--epochs", str(epochs), "--out", str(run_dir)]
            with cpu_lock(args.lock):
                run_measured([*cmd, "--set", f"train.health={value}", "-q"], env_with())
            times = [m.seconds for m in metrics_of(run_dir)]
            seconds[value] += times
            totals[value] = sum(times)
        paired.append(totals["true"] / totals["false"] - 1)
    with cpu_lock(args.lock):
        probe = probe_cost(max(args.reps, 5))
    on, off = summarize(seconds["true"]), summarize(seconds["false"])
    return {
        "epochs_per_run": epochs,
        "seconds_per_epoch_on": on,
        "seconds_per_epoch_off": off,
        "overhead_of_medians": on["median"] / off["median"] - 1,
        "overhead_paired_runs": summarize(paired),
        **probe,
    }


def probe_cost(reps: int) -> dict:
    """Seconds of one health probe and of one training step of configs/default.yaml's model, in this process."""
    import torch
    import torch.nn.functional as F

    from mnist_cli.config import load_config
    from mnist_cli.model import build_model
    from mnist_cli.training.probe import PROBE_IMAGES, HealthProbe, probe_steps

    cfg = load_config(REPO / "configs" / "default.yaml")
    model = build_model(cfg.model, 784, 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch, labels = torch.randn(cfg.train.batch_size, 28, 28), torch.randint(0, 10, (cfg.train.batch_size,))
    probe = HealthProbe(model, torch.randn(PROBE_IMAGES, 28, 28), cfg.model.activation, 215, cfg.train.health_probes_per_epoch)

    def step(probing: bool) -> float:
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(batch), labels)
        optimizer.zero_grad()
        loss.backward()
        if probing:
            probe.before_update()
        optimizer.step()
        if probing:
            probe.record(1, 2, loss.item())
        return time.perf_counter() - t0

    for _ in range(5):
        step(True)
    plain, probed = [], []
    for _ in range(reps * 10):
        plain.append(step(False))
        probed.append(step(True))
    step_s, probe_s = summarize(plain)["median"], summarize(probed)["median"] - summarize(plain)["median"]
    steps = 215  # configs/default.yaml: 55,000 images at batch 256
    probes = len(probe_steps(steps, cfg.train.health_probes_per_epoch))
    return {
        "step_seconds": step_s,
        "probe_seconds": probe_s,
        "probes_per_epoch": probes,
        "overhead_estimated": probes * probe_s / (steps * step_s),
    }


def step_profile(args, work: Path) -> dict:
    """Where a step's time goes at batch 15, 64 and 256 (benchmarks/profile_step.py, in a process of its own)."""
    with cpu_lock(args.lock):
        return json.loads(run_measured([PYTHON, str(HERE / "profile_step.py"), "--steps", str(args.reps * 100)], env_with())[2])


def loaded(args, work: Path) -> dict:
    """Seconds per epoch of classic-64x3 and default.yaml on the quiet machine, then with two busy-loop processes
    (started and stopped here), and the loaded/quiet ratios (the target: at most 3)."""
    out: dict = {"classic-64x3": {}, "default": {}}
    for state in ("quiet", "loaded"):
        busy = [subprocess.Popen([PYTHON, "-c", "while True: pass"]) for _ in range(2 if state == "loaded" else 0)]
        try:
            with cpu_lock(args.lock):
                for recipe, r in out.items():
                    r[state] = mnist_run(args, recipe, work / f"{state}-{recipe}")["seconds_per_epoch"]
        finally:
            for p in busy:
                p.kill()
                p.wait()
    for r in out.values():
        r["ratio"] = r["loaded"]["median"] / r["quiet"]["median"]
    return out


def machine() -> dict:
    import torch

    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    cpu = next((line.split(":", 1)[1].strip() for line in info if "model name" in line), "")
    return {
        "host": socket.gethostname(),
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch of the classics, 1 run each, no mlp-99* recipes")
    every = "peers,profile,loaded,tta,startup,serve,health,sweep"
    parser.add_argument("--sections", default=every, help=f"comma-separated subset of {every}")
    parser.add_argument("--lock", default="/tmp/mnist-cpu.lock", help="flock file held per section ('' for none)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--peer-images", type=int, help="the peers train on the first N images only (smoke runs)")
    parser.add_argument("--threads", type=int, help="the sweep section's thread budget, both sides (default: the cores)")
    args = parser.parse_args()
    args.reps = 1 if args.quick else 3
    args.epochs = 1 if args.quick else 3
    sections = set(args.sections.split(","))
    if unknown := sections - set(every.split(",")):
        parser.error(f"no section {', '.join(sorted(unknown))}; the sections are {every}")  # exit 2, nothing written
    os.environ.setdefault("MNIST_DATA_DIR", str(REPO / "data"))

    now = datetime.datetime.now(datetime.timezone.utc)
    results: dict = {"machine": machine(), "date": now.strftime("%Y-%m-%d %H:%M UTC"), "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as tmp:
        work = Path(tmp)
        if "peers" in sections:
            results["peers"] = peers(args, work)
            print(table(results), file=sys.stderr)
        if "profile" in sections:
            results["profile"] = step_profile(args, work)
        if "loaded" in sections:
            results["loaded"] = loaded(args, work)
            print(table(results), file=sys.stderr)
        if "tta" in sections:
            results["time_to_accuracy"] = time_to_accuracy(args, work)
            results["efficiency"] = efficiency(args, results["time_to_accuracy"])
            print(table(results), file=sys.stderr)
        if "startup" in sections:
            results["startup"] = startup_and_inference(args, work)
        if "sweep" in sections:
            results["sweep_vs_loop"] = sweep_vs_loop(args, work)
        if "serve" in sections:
            results["serve"] = serve_section(args, work)
        if "health" in sections:
            results["health"] = health_overhead(args, work)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{results['machine']['host']}-{now.strftime('%Y-%m-%d')}{'-quick' if args.quick else ''}"
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(table(results))
    print(table(results))
    print(f"wrote {args.out / stem}.json and .md", file=sys.stderr)


if __name__ == "__main__":
    main()
