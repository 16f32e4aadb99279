"""Make the pictures of docs/learning.md (and the sweep heatmap of docs/sweeps.md) from real runs of the current code.

    python docs/make_learning_figures.py                  # trains the page's runs in a scratch folder
    python docs/make_learning_figures.py --runs DIR       # reuse (or keep) the run folders in DIR
    python docs/make_learning_figures.py --sweep          # also the 36-run depth x width sweep and its two figures

The runs are exactly the page's commands; the pictures are the files `mnist report`, `mnist compare` and
`mnist sweep` write, copied into docs/images under the names the pages use.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
EPOCHS = ["--epochs", "2", "-q"]
RELU_8 = ["--set", "model.depth=8", "--set", "model.width=64", "--set", "model.activation=relu"]
RUNS = {
    "depth-1": ["--set", "model.depth=1", "--set", "model.width=256"],
    "depth-2": ["--set", "model.depth=2", "--set", "model.width=256"],
    "depth-4": ["--set", "model.depth=4", "--set", "model.width=256"],
    "width-16": ["--set", "model.depth=1", "--set", "model.width=16"],
    "width-512": ["--set", "model.depth=1", "--set", "model.width=512"],
    "sigmoid-8": ["--set", "model.depth=8", "--set", "model.width=64", "--set", "model.activation=sigmoid"],
    "relu-8": RELU_8,
    "relu-8-kaiming": [*RELU_8, "--set", "model.init=kaiming"],
}
# picture in docs/images -> (the run, the file its report writes)
REPORTS = {
    "width-16-weights.png": ("width-16", "weights.png"),
    "width-512-weights.png": ("width-512", "weights.png"),
    "width-512-mistakes.png": ("width-512", "mistakes.png"),
    "sigmoid-8-health.png": ("sigmoid-8", "health.png"),
    "relu-8-health.png": ("relu-8", "health.png"),
    "relu-8-kaiming-health.png": ("relu-8-kaiming", "health.png"),
}
COMPARES = {"depth-compare.png": ["depth-1", "depth-2", "depth-4"], "activation-compare.png": ["sigmoid-8", "relu-8"]}


def mnist(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "mnist_cli", *args], cwd=cwd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, help="folder for the run folders (default: a scratch folder, removed)")
    parser.add_argument("--sweep", action="store_true", help="also run the depth x width sweep for sweep-heatmap.png")
    args = parser.parse_args()
    work = args.runs or Path(tempfile.mkdtemp(prefix="learning-figures-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for name, settings in RUNS.items():
            if not (work / name / "best.pt").exists():
                mnist("train", *settings, *EPOCHS, "--out", str(work / name), cwd=REPO)
        for picture, (run, figure) in REPORTS.items():
            mnist("report", str(work / run), "--out", str(work / "reports" / run), cwd=REPO)
            shutil.copy(work / "reports" / run / figure, IMAGES / picture)
        for picture, runs in COMPARES.items():
            out = work / "compare" / Path(picture).stem
            mnist("compare", *(str(work / r) for r in runs), "--out", str(out), cwd=REPO)
            shutil.copy(out / "compare.png", IMAGES / picture)
        if args.sweep:
            out = work / "sweep"
            grid = ["--grid", "model.depth=1,2,3,4", "--grid", "model.width=32,128,512", "--seeds", "3", "--epochs", "2"]
            mnist("sweep", "-c", "configs/default.yaml", *grid, "--out", str(out), cwd=REPO)
            shutil.copy(out / "heatmap.png", IMAGES / "sweep-heatmap.png")
            shutil.copy(out / "accuracy-vs-parameters.png", IMAGES / "sweep-accuracy-vs-parameters.png")
    finally:
        if args.runs is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote the pictures into {IMAGES.relative_to(REPO)}")


if __name__ == "__main__":
    main()
