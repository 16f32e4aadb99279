"""Per-epoch seconds of one config, this tree against another git revision, run alternately in one session.

Alternating A, B, A, B, ... lets both see the same machine load, so a refactor's cost shows as a ratio, not noise.
    python benchmarks/versus.py REV [--config configs/default.yaml] [--epochs 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def per_epoch_seconds(tree: Path, config: str, epochs: int, out: Path) -> list[float]:
    """Train with the package in `tree` and return the seconds of each epoch from its record (events.jsonl, or the
    metrics.jsonl of releases before it)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-m", "mnist_cli", "train", "-c", str(REPO / config), "--epochs", str(epochs)]
    subprocess.run([*command, "--out", str(out), "-q", "--overwrite"], env=env, cwd=tree, check=True, capture_output=True)
    if (out / "events.jsonl").exists():
        rows = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        return [row["seconds"] for row in rows if row["kind"] == "epoch"]
    return [json.loads(line)["seconds"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev")
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(other), args.rev], check=True)
        try:
            seconds: dict[str, list[float]] = {"this tree": [], args.rev: []}
            for _ in range(args.rounds):
                for i, (name, tree) in enumerate((("this tree", REPO), (args.rev, other))):
                    # A folder each: one release may not take the other's run folder as its own to overwrite.
                    seconds[name] += per_epoch_seconds(tree, args.config, args.epochs, Path(tmp) / f"run-{i}")
                    print(f"{name:>12}: {seconds[name][-args.epochs :]}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(other)], check=True)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, values in seconds.items():
        print(f"{name:>12}: median {medians[name]:.3f} s/epoch (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})")
    print(f"ratio this/{args.rev}: {medians['this tree'] / medians[args.rev]:.3f}")


if __name__ == "__main__":
    main()
