"""The Train page's run against `mnist train` of the same settings, alternating, on a quiet machine:

    .venv/bin/python benchmarks/playground_speed.py [--config default] [--epochs 2] [--pairs 3]

Each side's train_seconds (the training loop's own clock, from result.json), run after run in alternating order,
and the ratio page / CLI of their medians (issue 19 asks for at most 1.10). The page's run is started through the
API (POST /api/runs) of an app served in this process, as `mnist serve` serves it, and polled as a page would be.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli_seconds(command: str, out: Path) -> tuple[float, Path]:
    """`command` (the page's equivalent `mnist train ...`) as a process of this tree: (train_seconds, best.pt)."""
    args = [sys.executable, "-m", "mnist_cli", *shlex.split(command)[1:], "--out", str(out), "--overwrite", "-q", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(args, capture_output=True, text=True, check=True, env=env, cwd=REPO)
    return json.loads(done.stdout)["train_seconds"], out / "best.pt"


def page_seconds(client, settings: dict, config: str | None) -> tuple[float, str]:
    """A run started as the page starts one, waited for as the page waits: (train_seconds, its command)."""
    from mnist_cli.record import read_result

    params = {"overwrite": "true", **({"config": config} if config else {})}
    r = client.post("/api/runs", json=settings, params=params)
    assert r.status_code == 202, r.text
    run = r.json()
    while client.get(f"/api/runs/{run['id']}").json()["status"] == "running":
        time.sleep(0.5)
    result = read_result(run["run_dir"])
    assert result is not None, client.get(f"/api/runs/{run['id']}").json()
    return result.train_seconds, run["command"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default", help="a shipped config's name (configs/NAME.yaml)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    if not (REPO / "configs" / f"{args.config}.yaml").is_file():
        parser.error(f"no shipped config named {args.config!r}: give a name from configs/ without .yaml, such as default")
    if args.pairs < 1 or args.epochs < 1:
        parser.error("--pairs and --epochs must be at least 1")
    sys.path.insert(0, str(REPO))
    os.chdir(REPO)  # the page finds the shipped configs in its working folder
    with tempfile.TemporaryDirectory(prefix="playground-speed-") as tmp:
        page, cli = alternate(Path(tmp), args.config, args.epochs, args.pairs)
    ratio = statistics.median(page) / statistics.median(cli)
    print(f"train_seconds, median of {len(page)} page / {len(cli)} CLI runs: page {statistics.median(page):.3f} s")
    print(f"CLI {statistics.median(cli):.3f} s  ratio {ratio:.3f} (target at most 1.10)")


def alternate(work: Path, config: str, epochs: int, pairs: int) -> tuple[list[float], list[float]]:
    """`pairs` x (CLI, page) runs, in that order: each side's train_seconds."""
    from fastapi.testclient import TestClient

    from mnist_cli.inference.trained import load_trained
    from mnist_cli.serving.app import create_app

    os.environ["MNIST_CHECKPOINT_DIR"] = str(work / "checkpoints")
    settings = {"train": {"epochs": epochs}}
    command = f"mnist train configs/{config}.yaml --set train.epochs={epochs}"
    first, ckpt = cli_seconds(command, work / "cli")  # its best.pt is the model the app serves
    page, cli = [], [first]
    with TestClient(create_app(load_trained(ckpt))) as client:
        for i in range(pairs):  # CLI, page, CLI, page, ...
            page.append(page_seconds(client, settings, config)[0])
            print(f"pair {i + 1}: CLI {cli[-1]:.3f} s  page {page[-1]:.3f} s  ({command})", flush=True)
            if i + 1 < pairs:
                cli.append(cli_seconds(command, work / "cli")[0])
    return page, cli


if __name__ == "__main__":  # the page's runs are spawned processes: they import this file again
    main()
