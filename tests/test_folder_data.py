"""Folder datasets (one's own images, one subfolder per class) and fine-tuning from a trained checkpoint."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    MNIST,
    N_TEST,
    assert_clean_error,
    assert_identical,
    invoke,
    start,
    wait_for,
    write_config,
    write_digit_folder,
)

from mnist_cli.checkpoint import load_checkpoint
from mnist_cli.config import load_config
from mnist_cli.data import folder
from mnist_cli.model import build_model
from mnist_cli.training.init_from import initial_weights
from mnist_cli.training.loop import train

NAMES = ["zero", "one", "two"]


def folder_config(tmp_path: Path, root: Path, **sections) -> Path:
    data = {"dataset": "folder", "root": str(root), "val_size": 0.1, **sections.pop("data", {})}
    return write_config(tmp_path / "folder.yaml", data=data, **sections)


@pytest.fixture
def small_folder(tmp_path) -> Path:
    return write_digit_folder(tmp_path / "own", NAMES, per_class=30)


def evaluated(checkpoint: Path, *args) -> dict:
    """`mnist eval CHECKPOINT ARGS --json`, which must succeed."""
    r = invoke("eval", checkpoint, *args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_a_folder_trains_evaluates_and_predicts_with_its_class_names_and_its_test_folder(small_folder, tmp_path):
    r = invoke("train", "-c", folder_config(tmp_path, small_folder), "--out", tmp_path / "run", "--json")
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["classes"] == ["one", "two", "zero"]  # folder names, sorted
    assert (ckpt["input_shape"], ckpt["input_scale"]) == ([1, 28, 28], 255.0)
    assert ckpt["normalization"]["mean"] not in (0.0, 0.1307)  # computed from the folder's training part
    result = evaluated(tmp_path / "run" / "best.pt")
    assert (result["n"], len(result["per_class"]), len(result["confusion"])) == (18, 3, 3)  # a stratified 20%: 6 a class
    r = invoke("predict", "--checkpoint", tmp_path / "run" / "best.pt", next((small_folder / "two").glob("*.png")), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["label"] in NAMES
    test_root = write_digit_folder(tmp_path / "held", ["zero", "seven"], per_class=5, start=30)
    cfg = folder_config(tmp_path, small_folder, data={"test_root": str(test_root)})
    r = invoke("train", "-c", cfg, "--out", tmp_path / "run2")
    assert_clean_error(r, "class folders seven are not among the model's classes (one, two, zero)")
    (test_root / "seven").rename(test_root / "one")
    r = invoke("train", "-c", cfg, "--out", tmp_path / "run2", "-q")
    assert r.exit_code == 0, r.output
    assert evaluated(tmp_path / "run2" / "best.pt")["n"] == 10


def test_unusable_files_and_classes_too_small_to_split_are_named(small_folder, tmp_path):
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
    assert_clean_error(
        invoke("train", "-c", cfg, "--out", tmp_path / "run2"), "8 file(s)", "two/empty0.png (empty file)", "and 3 more"
    )
    for extra in sorted((small_folder / "two").rglob("*.*"))[1:]:
        extra.unlink()
    r = invoke("train", "-c", cfg, "--set", "data.skip_bad_files=true", "--out", tmp_path / "run3")
    assert_clean_error(r, "too few images to split off a test part", "class two (1)")


def test_images_are_prepared_once_and_again_when_a_file_changes(small_folder, monkeypatch, tmp_path):
    first = folder.prepared_folder(small_folder, NAMES)
    monkeypatch.setattr(folder, "_prepare_all", lambda *a: pytest.fail("prepared again though nothing changed"))
    again = folder.prepared_folder(small_folder, NAMES)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    monkeypatch.undo()
    next((small_folder / "one").glob("*.png")).unlink()
    assert len(folder.prepared_folder(small_folder, NAMES)) == len(first) - 1
    assert len(list((tmp_path / "cache" / "mnist-cli" / "data" / "folders").iterdir())) == 1  # the old tensors went


def test_fine_tuning_on_a_few_of_ones_own_digits_raises_held_out_accuracy(trained_checkpoint, tmp_path):
    digits = [str(d) for d in range(10)]
    own, held = (write_digit_folder(tmp_path / n, digits, per_class=15, start=s) for n, s in (("own", 0), ("held", 15)))
    before = evaluated(trained_checkpoint, "--data", held)
    assert (before["n"], len(before["per_class"]), len(before["confusion"])) == (150, 10, 10)
    cfg = folder_config(tmp_path, own, train={"init_from": str(trained_checkpoint), "epochs": 8, "batch_size": 16})
    r = invoke("train", "-c", cfg, "--out", tmp_path / "tuned")
    assert r.exit_code == 0, r.output
    assert f"note: starting from the weights of {trained_checkpoint}" in r.stderr
    after = evaluated(tmp_path / "tuned" / "best.pt", "--data", held)["accuracy"]
    assert before["accuracy"] < 0.25 and after - before["accuracy"] > 0.6, (before, after)  # measured: 15.3% -> 89.3%
    assert evaluated(tmp_path / "tuned" / "best.pt", "--dataset", "mnist")["n"] == N_TEST  # what it still knows of MNIST
    r = invoke("eval", tmp_path / "tuned" / "best.pt", "--dataset", "digits")
    assert_clean_error(r, "--dataset digits: its images or classes are not this model's")
    r = invoke("eval", trained_checkpoint, "--data", held)
    assert r.exit_code == 0 and f"on {held}" in r.stdout and "confusion" in r.stdout, r.output
    (held / "3").rename(held / "three")
    assert_clean_error(invoke("eval", trained_checkpoint, "--data", held), "class folders three are not among")


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
    train_cfg = {"epochs": 3, "batch_size": 4, "save_every_steps": 5}
    cfg = folder_config(tmp_path, root, model={"depth": 2, "width": 64, "dropout": 0.1}, train=train_cfg)
    train(load_config(cfg), tmp_path / "baseline")  # also makes the cache the killed runs read
    out, rng, kills = tmp_path / "killed", random.Random(0), 0
    command = ["train", "-c", cfg, "--out", out, "--resume", "auto", "-q"]
    for _ in range(3):
        proc = start(command, tmp_path)
        wait_for(lambda proc=proc: proc.poll() is not None or (out / "last.pt").exists(), every=0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.kill()
        kills += proc.wait() == -signal.SIGKILL
    assert kills >= 2
    r = subprocess.run([*MNIST, *map(str, command)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert_identical(tmp_path / "baseline", out)
