"""Shared fixtures: tiny synthetic MNIST files written by the tests, and an isolated environment."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

runner = CliRunner()


def invoke(*args, input=None):
    """Run `mnist ARGS...` in-process through typer's CliRunner (paths may be Path objects)."""
    from mnist_cli.cli import app

    return runner.invoke(app, [str(a) for a in args], input=input)


def assert_clean_error(r, *needles: str) -> None:
    """A user's mistake: exit 2, exactly one line on stderr holding every needle, and no exception escaped."""
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit), r.exception  # a clean exit, not an exception that escaped
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr


REAL_DATA = Path(os.environ.get("MNIST_DATA_DIR") or Path(__file__).resolve().parents[1] / "../shared/data").resolve()
N_TRAIN, N_TEST = 600, 200


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding MNIST uses: magic (0, 0, uint8 type 8, ndim), big-endian sizes, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable fake digits: class k is a bright 3-pixel-high bar at rows 2k+2..2k+4, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        start = rng.integers(4, 10)
        images[i, 2 * k + 2 : 2 * k + 5, start : start + 14] = rng.integers(180, 256)
    return images, labels


def write_mnist(root: Path, folder: str = "MNIST", gz: bool = False, n_train: int = N_TRAIN, n_test: int = N_TEST) -> Path:
    """Write synthetic train/t10k IDX files under root/folder/raw (unpacked, or as .gz)."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = synthetic_digits(n, seed)
        for kind, arr, dims in (("images", images, 3), ("labels", labels, 1)):
            name = f"{prefix}-{kind}-idx{dims}-ubyte"
            data = idx_bytes(arr)
            if gz:
                (raw / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (raw / name).write_bytes(data)
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A data root holding synthetic MNIST (unpacked IDX files, as torchvision leaves them)."""
    return write_mnist(tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch, synthetic_root):
    """Every test gets its own checkpoints and cache folders and the synthetic data by default."""
    monkeypatch.setenv("MNIST_DATA_DIR", str(synthetic_root))
    monkeypatch.setenv("MNIST_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("MNIST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


# A small, fast config for synthetic data. Pinned rather than the schema defaults (the recommended recipe), so these
# tests do not move with it; the playground's tests send the same settings through its API.
TINY = {
    "seed": 0,
    "data": {"val_size": 100},
    "model": {"depth": 1, "width": 32},
    "train": {
        "epochs": 2,
        "batch_size": 32,
        "lr": 0.003,
        "schedule": "none",
        "label_smoothing": 0.0,
        "device": "cpu",
        "threads": 1,
    },
}


def write_config(path: Path, **sections) -> Path:
    """TINY with `sections` merged over it, as a YAML file."""
    cfg = dict(TINY)
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    return write_config(tmp_path / "tiny.yaml")


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, synthetic_root) -> Path:
    """One checkpoint trained on synthetic data, shared by tests that only read it."""
    return train_run(tmp_path_factory.mktemp("trained") / "run", synthetic_root) / "best.pt"


def require_real_data() -> None:
    """Skip on a developer machine without the real MNIST; under CI its absence is a failure, never a skip."""
    if (REAL_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file():
        return
    message = f"real MNIST not found under {REAL_DATA} (set MNIST_DATA_DIR)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def real_checkpoint(tmp_path_factory) -> Path:
    """A small MLP trained on the real MNIST by `mnist train` in a few seconds of CPU, gated at 97% test accuracy: the
    end-to-end run that test_cli evaluates and the predict, export and serve tests read."""
    require_real_data()
    out = tmp_path_factory.mktemp("real")
    (out / "real.yaml").write_text(
        yaml.safe_dump(
            {
                "seed": 0,
                "data": {"root": str(REAL_DATA)},
                "model": {"depth": 2, "width": 256},
                "train": {"epochs": 2, "batch_size": 256, "schedule": "onecycle", "lr": 0.003, "device": "cpu", "threads": 1},
            }
        )
    )
    r = invoke("train", "-c", out / "real.yaml", "--json", "-q", "--out", out / "run")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["test_accuracy"] >= 0.97 and result["val_accuracy"] >= 0.96, result
    return out / "run" / "best.pt"


def sign(ckpt: dict) -> dict:
    """A hand-edited checkpoint with a valid digest: the digest proves integrity, not trust, so the checks after it must hold."""
    from mnist_cli.checkpoint import DIGEST_KEY, content_digest

    ckpt[DIGEST_KEY] = content_digest({k: v for k, v in ckpt.items() if k != DIGEST_KEY})
    return ckpt


# A run big enough to be killed mid-step: 87 steps an epoch, a save every 5 steps, dropout drawing from the RNG.
KILL_CONFIG = dict(
    model={"depth": 2, "width": 256, "dropout": 0.1},
    train={"epochs": 5, "batch_size": 32, "save_every_steps": 5, "schedule": "cosine"},
)


@pytest.fixture(scope="session")
def kill_setup(tmp_path_factory):
    """(config, baseline run folder): KILL_CONFIG on 3,000 synthetic images, trained once uninterrupted; read-only."""
    folder = tmp_path_factory.mktemp("kill")
    root = write_mnist(folder / "bigger", n_train=3000)  # 87 steps per epoch
    train_run(folder / "baseline", root, data={"val_size": 200}, **KILL_CONFIG)
    return folder / "baseline.yaml", folder / "baseline"


# --- core: training runs, resume and a run's record (test_resume, test_signals, test_health, test_disk_faults, ...) ---

MNIST = [sys.executable, "-m", "mnist_cli"]
# Dropout, batch norm and a cosine schedule: every kind of state a resume has to restore.
HARD = dict(model={"depth": 2, "width": 32, "dropout": 0.2, "norm": "batch"}, train={"epochs": 2, "schedule": "cosine"})


@pytest.fixture(scope="session")
def hard_run(tmp_path_factory, synthetic_root) -> Path:
    """HARD on the synthetic data, trained once (16 steps an epoch); tests read it, and resume copies of it."""
    return train_run(tmp_path_factory.mktemp("hard") / "run", synthetic_root, **HARD)


# The XOR tutorial's net (configs/tutorial-xor.yaml) for 300 epochs: a tiny, long run.
XOR = dict(
    data={"dataset": "xor", "val_size": 0},
    model={"depth": 1, "width": 3, "activation": "sigmoid", "init": "uniform01"},
    train={"epochs": 300, "batch_size": 4, "optimizer": "sgd", "momentum": 0.0, "lr": 0.5, "loss": "mse"},
)


def one_error_line(text: str) -> str:
    """The one `error:` line of a command's stderr (other lines, such as "resuming from", may come first)."""
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    return errors[0]


def assert_refused(r, *fragments: str) -> None:
    """Exit 2 with one `error:` line holding every fragment; `r` from invoke() or subprocess.run()."""
    line = one_error_line(r.stderr)
    assert getattr(r, "exit_code", getattr(r, "returncode", None)) == 2, r.stderr
    for fragment in fragments:
        assert fragment in line, r.stderr


def records(run: Path, kind: type | None = None) -> list:
    """The run's records (events.jsonl, or the logs of the release before), of one kind if given."""
    from mnist_cli.record import read_run_records

    return [r for r in read_run_records(run) if kind is None or isinstance(r, kind)]


def epoch_records(run: Path) -> list:
    """The run's epoch records."""
    from mnist_cli.record import EpochMetrics

    return records(run, EpochMetrics)


def without_clocks(run: Path) -> list:
    """Every record of the run, the wall-clock fields (which no two runs share) zeroed."""
    import dataclasses

    from mnist_cli.record import EpochMetrics

    return [
        dataclasses.replace(r, seconds=0.0, samples_per_second=0.0) if isinstance(r, EpochMetrics) else r for r in records(run)
    ]


def assert_identical(a: Path, b: Path) -> None:
    """Same weights, optimizer state, best model and records (steps, health, epochs, test), bit for bit."""
    import torch

    for name in ("last.pt", "best.pt"):
        x, y = torch.load(a / name, weights_only=True), torch.load(b / name, weights_only=True)
        assert x["model_state"].keys() == y["model_state"].keys()
        for key in x["model_state"]:
            assert torch.equal(x["model_state"][key], y["model_state"][key]), (name, key)
        for i, state in x["optimizer_state"]["state"].items():
            for key, value in state.items():
                assert torch.equal(value, y["optimizer_state"]["state"][i][key]), (name, i, key)
        clock = ("seconds", "samples_per_second")
        assert {k: v for k, v in x["metrics"].items() if k not in clock} == {
            k: v for k, v in y["metrics"].items() if k not in clock
        }
    assert without_clocks(a) == without_clocks(b)


def position(last: Path) -> tuple[int, int]:
    """(epoch, step) a last.pt resumes from."""
    from mnist_cli.checkpoint import load_checkpoint

    state = load_checkpoint(last)["resume"]
    return state["epoch"], state["step"]


def start(args, cwd: Path, stdout=subprocess.PIPE, **kwargs) -> subprocess.Popen:
    """`mnist ARGS` as a real process, stderr (and by default stdout) piped."""
    return subprocess.Popen([*MNIST, *map(str, args)], cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(condition, timeout: float = 60.0, every: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


class Stderr:
    """Collects a process's stderr lines on a thread, so the test can wait for one."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(proc.stderr), daemon=True)
        self.thread.start()

    def text(self) -> str:
        self.thread.join(timeout=30)
        return "".join(self.lines)


def train_run(folder: Path, root: Path, should_stop=lambda: False, data: dict | None = None, **sections) -> Path:
    """A small run on the data under `root` (TINY, 100 validation images, `sections` over it); returns its folder."""
    from mnist_cli.config import load_config
    from mnist_cli.training.loop import train

    folder.mkdir(parents=True, exist_ok=True)
    data = {"val_size": 100, "root": str(root), **(data or {})}
    train(
        load_config(write_config(folder.parent / f"{folder.name}.yaml", data=data, **sections)), folder, should_stop=should_stop
    )
    return folder


def stopped_run(folder: Path, root: Path) -> Path:
    """A run stopped at step 3 of its first epoch, as Ctrl-C stops one: last.pt, no finished epoch."""
    from mnist_cli.errors import TrainingInterrupted

    calls = iter(range(1000))
    with pytest.raises(TrainingInterrupted):
        train_run(folder, root, should_stop=lambda: next(calls) >= 2)
    assert (folder / "last.pt").exists() and not epoch_records(folder)
    return folder


# --- sweep (test_sweep.py, test_ray_cluster.py) ---

# 6 tiny runs of 4 epochs, last.pt every 5 steps: a run stopped anywhere resumes close to where it was.
SWEEP_ARGS = ["--grid", "model.width=16,24,32", "--seeds", "2", "--set", "train.epochs=4", "--set", "train.save_every_steps=5"]


def sweep_base(folder: Path) -> Path:
    """The base config of the sweep tests: one epoch at a low rate, so that seeds differ and a std is not zero."""
    return write_config(folder / "base.yaml", train={"epochs": 1, "lr": 0.001})


@pytest.fixture(scope="session")
def reference_sweep(tmp_path_factory, synthetic_root) -> list[tuple[str, ...]]:
    """`sweep_results` of one unbroken local sweep of SWEEP_ARGS, which broken, resumed and Ray sweeps must equal."""
    folder = tmp_path_factory.mktemp("reference")
    env = {**os.environ, "MNIST_DATA_DIR": str(synthetic_root), "MNIST_CHECKPOINT_DIR": str(folder / "checkpoints")}
    env["MNIST_CACHE_DIR"] = str(folder / "cache")
    args = ["sweep", "-c", sweep_base(folder), *SWEEP_ARGS, "--jobs", "2", "--out", folder / "out", "-q"]
    r = subprocess.run([sys.executable, "-m", "mnist_cli", *map(str, args)], cwd=folder, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return sweep_results(folder / "out")


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def sweep_results(out: Path) -> list[tuple[str, ...]]:
    """A sweep's runs.csv as (out_dir, status, val accuracy, test accuracy, test loss) per run."""
    columns = ("out_dir", "status", "val_accuracy", "test_accuracy", "test_loss")
    return [tuple(r[c] for c in columns) for r in csv_rows(out / "runs.csv")]


def start_mnist(args: list, cwd: Path) -> subprocess.Popen:
    """`mnist ARGS` in a session of its own, as a terminal runs it (Ctrl-C goes to the whole group); stdout dropped."""
    return start(args, cwd, stdout=subprocess.DEVNULL, start_new_session=True)


def wait_until(proc: subprocess.Popen, ready, limit_s: float = 300) -> None:
    """Poll `ready()` until true; fails if the process ends first or nothing happens within `limit_s`."""
    deadline = time.monotonic() + limit_s
    while not ready():
        assert proc.poll() is None, f"the command ended before the test could break it: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "the command made no progress"
        time.sleep(0.02)


def training(out: Path) -> list[Path]:
    """A sweep's runs that have saved last.pt and not finished (no result.json): each is training now."""
    return [p.parent for p in out.glob("*/seed=*/last.pt") if not (p.parent / "result.json").exists()]


# --- folder datasets (issue 21) -----------------------------------------------------------------------------------


def write_digit_folder(root: Path, names: list[str], per_class: int, start: int = 0) -> Path:
    """Other writers' digits (scikit-learn's 8x8 UCI optdigits), drawn as dark ink on white 56x56 pictures, as a folder
    dataset: root/<names[d]>/, digit d's examples start..start+per_class, alternately PNG and JPEG, every third nested."""
    from PIL import Image, ImageOps
    from sklearn.datasets import load_digits

    digits = load_digits()
    for d, name in enumerate(names):
        for i in np.flatnonzero(digits.target == d)[start : start + per_class]:
            ink = Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8)).resize((56, 56), Image.Resampling.BICUBIC)
            folder = root / name / ("more" if i % 3 == 0 else "")
            folder.mkdir(parents=True, exist_ok=True)
            ImageOps.invert(ink).save(folder / f"{i}.{'jpg' if i % 2 else 'png'}")
    return root


# --- predict and serve ---


@pytest.fixture(scope="session")
def xor_checkpoint(tmp_path_factory) -> Path:
    """A truth-table model: what the XOR tutorial leaves under checkpoints/, and neither predict nor serve can use."""
    run = tmp_path_factory.mktemp("xor") / "run"
    return train_run(run, run.parent, data={"dataset": "xor", "val_size": 0}, model={"depth": 1, "width": 3}) / "best.pt"


def place_checkpoint(source: Path, folder: Path, mtime: float) -> Path:
    """Copy `source` to folder/best.pt under $MNIST_CHECKPOINT_DIR, dated `mtime` (seconds since the epoch)."""
    import shutil

    path = Path(os.environ["MNIST_CHECKPOINT_DIR"]) / folder / "best.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, path)
    if (source.parent / "result.json").exists():  # the run's final test, which the choice reads
        shutil.copy(source.parent / "result.json", path.parent)
    os.utime(path, (mtime, mtime))
    return path


def digit_png(row: int = 5, side: int = 140) -> bytes:
    """A dark bar on white paper, like the synthetic training digits (class k is a bar at rows 2k+2..2k+4)."""
    import io

    from PIL import Image

    pixels = np.full((28, 28), 255, dtype=np.uint8)
    pixels[row : row + 3, 7:21] = 0
    buf = io.BytesIO()
    Image.fromarray(pixels).resize((side, side), Image.Resampling.NEAREST).save(buf, "PNG")
    return buf.getvalue()


def chromium() -> str:
    """Debian's Chromium (browser downloads are not possible here); missing: skip locally, fail under CI."""
    import shutil

    path = shutil.which("chromium")
    if not path:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("chromium not found (apt-get install chromium)")
    return path


# --- report and compare (test_report, test_compare, test_verdicts) ---


@pytest.fixture(scope="session")
def finished_run(trained_checkpoint) -> Path:
    """trained_checkpoint's run folder (TINY, finished): tests read it, and copy it to change it."""
    return trained_checkpoint.parent


@pytest.fixture(scope="session")
def stopped_before_an_epoch(tmp_path_factory, synthetic_root) -> Path:
    """A run stopped at step 3 of its first epoch (stopped_run), which tests only read."""
    return stopped_run(tmp_path_factory.mktemp("stopped") / "run", synthetic_root)


# --- predict, serve and checkpoints (test_predict, test_serve_*, test_playground*, test_bad_input, test_permissions) ---


def blob_png(path: Path) -> Path:
    """A white 10x6 bar on black, 28x24 px: enough of a digit for the synthetic model to answer."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.pad(np.full((10, 6), 255, np.uint8), 9)).save(path)
    return path


@pytest.fixture(scope="session")
def wide_run(tmp_path_factory, synthetic_root) -> Path:
    """A finished TINY run 48 units wide (finished_run's is 32): a second image model for the pages to choose; read-only."""
    return train_run(tmp_path_factory.mktemp("wide") / "wide", synthetic_root, model={"width": 48})


def encoded(img, fmt: str = "PNG", **options) -> bytes:
    """A PIL image as the bytes of a `fmt` file."""
    import io

    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()
