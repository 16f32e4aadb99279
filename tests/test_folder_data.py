"""Folder datasets (one's own images, one subfolder per class) and fine-tuning from a trained checkpoint."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import N_TEST, assert_clean_error, invoke, write_config, write_digit_folder

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.config import load_config
from mnist_cli.data import folder
from mnist_cli.model import build_model
from mnist_cli.training.init_from import initial_weights
from mnist_cli.training.loop import train

NAMES = ["zero", "one", "two"]


def folder_config(tmp_path: Path, root: Path, name: str = "folder.yaml", **sections) -> Path:
    data = {"dataset": "folder", "root": str(root), "val_size": 0.1, **sections.pop("data", {})}
    return write_config(tmp_path / name, data=data, **sections)


@pytest.fixture
def small_folder(tmp_path) -> Path:
    return write_digit_folder(tmp_path / "own", NAMES, per_class=30)


def test_a_folder_trains_evaluates_and_predicts_with_its_class_names(small_folder, tmp_path):
    r = invoke("train", "-c", folder_config(tmp_path, small_folder), "--out", tmp_path / "run", "--json")
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["classes"] == ["one", "two", "zero"]  # folder names, sorted
    assert (ckpt["input_shape"], ckpt["input_scale"]) == ([1, 28, 28], 255.0)
    assert ckpt["normalization"]["mean"] not in (0.0, 0.1307)  # computed from the folder's training part
    r = invoke("eval", tmp_path / "run" / "best.pt", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["n"] == 18  # a stratified 20%: 6 of each class's 30
    assert len(result["per_class"]) == 3 and len(result["confusion"]) == 3
    picture = next((small_folder / "two").glob("*.png"))
    r = invoke("predict", "--checkpoint", tmp_path / "run" / "best.pt", picture, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["label"] in NAMES


def test_unusable_files_are_named_and_refused_unless_skipped(small_folder, tmp_path):
    (small_folder / "zero" / "more" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (small_folder / "one" / "notes.txt").write_text("these are my ones")
    cfg = folder_config(tmp_path, small_folder)
    r = invoke("train", "-c", cfg, "--out", tmp_path / "run")
    assert_clean_error(r, "2 file(s)", "zero/more/broken.png (not a readable image", "one/notes.txt (not an image file (.txt))")
    assert "data.skip_bad_files: true" in r.stderr
    assert not (tmp_path / "run").exists()
    r = invoke("train", "-c", cfg, "--set", "data.skip_bad_files=true", "--out", tmp_path / "run", "-q")
    assert r.exit_code == 0, r.output
    for i in range(6):  # many: the first few and a count
        (small_folder / "two" / f"empty{i}.png").write_bytes(b"")
    r = invoke("train", "-c", cfg, "--out", tmp_path / "run2")
    assert_clean_error(r, "8 file(s)", "two/empty0.png (empty file)", "and 3 more")


def test_classes_too_small_to_split_are_named(tmp_path):
    root = write_digit_folder(tmp_path / "own", NAMES, per_class=20)
    for extra in sorted((root / "two").rglob("*.*"))[1:]:
        extra.unlink()
    r = invoke("train", "-c", folder_config(tmp_path, root), "--out", tmp_path / "run")
    assert_clean_error(r, "too few images to split off a test part", "class two (1)")


def test_a_separate_test_folder_must_hold_the_same_classes(small_folder, tmp_path):
    test_root = write_digit_folder(tmp_path / "held", ["zero", "seven"], per_class=5, start=30)
    cfg = folder_config(tmp_path, small_folder, data={"test_root": str(test_root)})
    r = invoke("train", "-c", cfg, "--out", tmp_path / "run")
    assert_clean_error(r, "class folders seven are not among the model's classes (one, two, zero)")
    (test_root / "seven").rename(test_root / "one")
    r = invoke("train", "-c", cfg, "--out", tmp_path / "run", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(invoke("eval", tmp_path / "run" / "best.pt", "--json").stdout)["n"] == 10


def test_images_are_prepared_once_and_again_when_a_file_changes(small_folder, monkeypatch):
    first = folder.prepared_folder(small_folder, NAMES)
    monkeypatch.setattr(folder, "_prepare_all", lambda *a: pytest.fail("prepared again though nothing changed"))
    again = folder.prepared_folder(small_folder, NAMES)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    monkeypatch.undo()
    next((small_folder / "one").glob("*.png")).unlink()
    assert len(folder.prepared_folder(small_folder, NAMES)) == len(first) - 1


def test_eval_data_gives_a_folders_tables_and_refuses_strange_classes(trained_checkpoint, tmp_path):
    root = write_digit_folder(tmp_path / "own", [str(d) for d in range(10)], per_class=3)
    r = invoke("eval", trained_checkpoint, "--data", root, "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["n"] == 30 and len(result["per_class"]) == 10 and len(result["confusion"]) == 10
    r = invoke("eval", trained_checkpoint, "--data", root)
    assert r.exit_code == 0 and f"on {root}" in r.stdout and "confusion" in r.stdout, r.output
    (root / "3").rename(root / "three")
    assert_clean_error(invoke("eval", trained_checkpoint, "--data", root), "class folders three are not among")


def held_out_accuracy(checkpoint: Path, folder_path: Path) -> float:
    r = invoke("eval", checkpoint, "--data", folder_path, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["accuracy"]


def test_fine_tuning_on_a_few_of_ones_own_digits_raises_held_out_accuracy(trained_checkpoint, tmp_path):
    digits = [str(d) for d in range(10)]
    own, held = (write_digit_folder(tmp_path / n, digits, per_class=15, start=s) for n, s in (("own", 0), ("held", 15)))
    before = held_out_accuracy(trained_checkpoint, held)
    cfg = folder_config(tmp_path, own, train={"init_from": str(trained_checkpoint), "epochs": 8, "batch_size": 16})
    r = invoke("train", "-c", cfg, "--out", tmp_path / "tuned")
    assert r.exit_code == 0, r.output
    assert f"note: starting from the weights of {trained_checkpoint}" in r.stderr
    after = held_out_accuracy(tmp_path / "tuned" / "best.pt", held)
    assert before < 0.25 and after - before > 0.6, (before, after)  # measured: 15.3% -> 89.3%
    r = invoke("eval", tmp_path / "tuned" / "best.pt", "--dataset", "mnist", "--json")  # what it still knows of MNIST
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n"] == N_TEST
    r = invoke("eval", tmp_path / "tuned" / "best.pt", "--dataset", "digits")
    assert_clean_error(r, "--dataset digits: its images or classes are not this model's")


def test_fine_tuning_refuses_another_architecture_and_resets_other_classes(trained_checkpoint, small_folder, tmp_path):
    cfg = folder_config(tmp_path, small_folder, train={"init_from": str(trained_checkpoint)})
    r = invoke("train", "-c", cfg, "--set", "model.width=64", "--out", tmp_path / "wide")
    assert_clean_error(r, "layer hidden.0.linear.weight differs (32x784 there, 64x784 in this run's model)")
    assert not (tmp_path / "wide").exists()  # refused in preflight, before the run folder is made
    r = invoke("train", "-c", cfg, "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert "its classes (0, 1, 2, 3, 4, 5, 6, 7, 8, 9) are not this run's (one, two, zero)" in r.stderr
    assert "output layer starts afresh" in r.stderr
    tuned, start = load_checkpoint(tmp_path / "run" / "last.pt"), load_checkpoint(trained_checkpoint)
    model = build_model(load_config(cfg).model, 784, 3)
    initial_weights(model, trained_checkpoint, NAMES)
    assert torch.equal(model.hidden[0].linear.weight, start["model_state"]["hidden.0.linear.weight"])
    assert tuned["normalization"] == start["normalization"]  # the weights expect inputs scaled as they were trained
    assert not torch.equal(tuned["model_state"]["hidden.0.linear.weight"], start["model_state"]["hidden.0.linear.weight"])
    r = invoke("train", "-c", cfg, "--init-from", tmp_path / "nothing.pt", "--out", tmp_path / "run3")
    assert_clean_error(r, "no such checkpoint", "nothing.pt")
    assert not (tmp_path / "run3").exists()


def test_a_folder_run_resumes_bit_identically_after_sigkill(tmp_path):
    root = write_digit_folder(tmp_path / "own", NAMES, per_class=100)
    cfg = folder_config(
        tmp_path,
        root,
        model={"depth": 2, "width": 64, "dropout": 0.1},
        train={"epochs": 3, "batch_size": 4, "save_every_steps": 5},
    )
    train(load_config(cfg), tmp_path / "baseline")  # also makes the cache the killed runs read
    out, rng, kills = tmp_path / "killed", random.Random(0), 0
    command = [sys.executable, "-m", "mnist_cli", "train", "-c", str(cfg), "--out", str(out), "--resume", "auto", "-q"]
    for _ in range(3):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and not (out / "last.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        kills += proc.wait() == -signal.SIGKILL
    assert kills >= 2
    r = subprocess.run(command, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for name in ("last.pt", "best.pt"):
        a, b = (torch.load(p / name, weights_only=True)["model_state"] for p in (tmp_path / "baseline", out))
        assert all(torch.equal(a[k], b[k]) for k in a), name
