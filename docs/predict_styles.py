"""Evidence for `mnist predict`: real MNIST test digits rendered as people's images, accuracy vs the originals.

    MNIST_DATA_DIR=/path/to/data PYTHONPATH=. python docs/predict_styles.py [--checkpoint best.pt] [--n 500]

Without --checkpoint it trains the tests' small model (depth 2, width 256, 2 epochs, a few seconds of CPU).
For each style it writes the images to a temporary folder, runs `python -m mnist_cli predict FOLDER --json`
in a subprocess, and prints a Markdown table; then the `--show` output for one image of three styles.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from digit_styles import STYLES, read_mnist_test, write_style  # noqa: E402

from mnist_cli.config import Config, default_data_root  # noqa: E402
from mnist_cli.inference.predict import classify  # noqa: E402
from mnist_cli.inference.trained import load_trained  # noqa: E402

SHOW_STYLES = ["coloured ink on tinted paper (JPEG)", "small, off-centre on a big page (PNG)", "photo with a shadow (JPEG)"]


def train_small(data: Path, out: Path) -> Path:
    """The tests' real_checkpoint recipe."""
    from mnist_cli.training.loop import train

    cfg = Config.model_validate(
        {
            "seed": 0,
            "data": {"root": str(data)},
            "model": {"depth": 2, "width": 256},
            "train": {"epochs": 2, "batch_size": 256, "schedule": "onecycle", "lr": 0.003, "device": "cpu"},
        }
    )
    return Path(train(cfg, out).checkpoint)


def mnist_predict(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mnist_cli", "predict", *args], capture_output=True, text=True, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--n", type=int, default=500, help="test digits per style (the first n of the test set)")
    args = parser.parse_args()
    data = default_data_root()
    digits, labels = read_mnist_test(data, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or train_small(data, Path(tmp) / "run")
        trained = load_trained(checkpoint)
        originals = classify(trained.model, torch.from_numpy(digits), trained.normalization).argmax(1).numpy()
        baseline = float((originals == labels).mean())
        print(f"checkpoint {checkpoint} (test accuracy {trained.test_accuracy or float('nan'):.2%})\n")
        print("| style | images | `mnist predict` | same checkpoint on the original 28x28 |")
        print("|---|---:|---:|---:|")
        shown = []
        for i, style in enumerate(STYLES):
            folder = Path(tmp) / re.sub(r"\W+", "-", style.split(" (")[0]).strip("-")
            paths = write_style(style, digits, folder, seed=i)
            r = mnist_predict(str(folder), "-m", str(checkpoint), "--json")
            rows = json.loads(r.stdout)
            predicted = np.array([row.get("prediction", -1) for row in rows])
            print(f"| {style} | {len(paths)} | {(predicted == labels).mean():.1%} | {baseline:.1%} |")
            if style in SHOW_STYLES:
                shown.append(paths[len(shown) + 7])
        print()
        r = mnist_predict(*map(str, shown), "-m", str(checkpoint), "--show")
        print(r.stdout, r.stderr, sep="")


if __name__ == "__main__":
    main()
