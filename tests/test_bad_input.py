"""Bad input that used to get a wrong message: booleans and NaN in configs, odd files, symlink loops, escape sequences."""

from __future__ import annotations

import os
import subprocess

import pytest
import torch
from conftest import MNIST, blob_png, invoke, sign


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("train.epochs=true", "train.epochs: must be a number, not true or false"),
        ("model.depth=false", "model.depth: must be a number, not true or false"),
        ("seed=true", "seed: must be a number, not true or false"),
        ("model.width=[true, 8]", "model.width: must be a number, not true or false"),
        ("train.lr=true", "train.lr: must be a number, not true or false"),
        ("train.epochs=2.5", "train.epochs: must be a whole number"),
        ("train.lr=.nan", "train.lr: must be a finite number"),
        ("train.lr=.inf", "train.lr: must be a finite number"),
        ("data.augment.rotate=-.inf", "data.augment.rotate: must be a finite number"),
    ],
)
def test_booleans_are_not_numbers_and_nan_is_not_finite(tiny_config, setting, message):
    r = invoke("train", "-c", tiny_config, "--set", setting, "--dry-run")
    assert r.exit_code == 2, r.output
    assert message in r.stderr


def test_floats_still_take_ints(tiny_config):
    r = invoke("train", "-c", tiny_config, "--set", "train.lr=1", "--set", "train.warmup_epochs=1", "--dry-run")
    assert r.exit_code == 0, r.output


def test_predict_says_what_a_fifo_a_device_and_a_symlink_loop_are(trained_checkpoint, tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    r = invoke("predict", tmp_path / "pipe.png", "/dev/zero", tmp_path / "loop.png", "-m", trained_checkpoint)
    assert r.exit_code == 2, r.output
    assert "pipe.png: a FIFO (named pipe), not a regular file" in r.stderr
    assert "/dev/zero: a character device, not a regular file" in r.stderr
    assert "loop.png: a symlink loop" in r.stderr


def test_resume_of_a_folder_suggests_its_last_pt(tmp_path):
    r = invoke("train", "--resume", tmp_path)
    assert r.exit_code == 2, r.output
    assert f"a run resumes from its last.pt: --resume {tmp_path / 'last.pt'}" in r.stderr


def test_a_class_with_no_images_has_no_accuracy():
    from mnist_cli.evaluate import ImagePredictions, summarize

    labels = torch.tensor([0, 0, 1])
    preds = ImagePredictions(torch.zeros(3, 3), torch.tensor([0, 1, 1]), labels, torch.zeros((), dtype=torch.float64))
    assert summarize(preds, 3).per_class == [0.5, 1.0, None]


def test_escape_sequences_in_file_and_class_names_are_shown_escaped(trained_checkpoint, tmp_path):
    evil = blob_png(tmp_path / "a\x1b]0;pwned\x07b.png")
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    ckpt["classes"] = [f"c\x1b[31m{i}" for i in range(10)]
    torch.save(sign(ckpt), tmp_path / "evil.pt")
    for args in (["predict", evil, "-m", tmp_path / "evil.pt"], ["eval", tmp_path / "evil.pt"]):
        r = invoke(*args)
        assert r.exit_code == 0, r.output
        assert "\x1b" not in r.stdout + r.stderr and "\x07" not in r.stdout
        assert "\\x1b[31m" in r.stdout
    r = invoke("predict", tmp_path / "missing\x1b[2J.png", "-m", tmp_path / "evil.pt")
    assert r.exit_code == 2 and "\x1b" not in r.stderr and "missing\\x1b[2J.png" in r.stderr


def test_a_recursive_glob_follows_no_symlinked_folder_and_counts_each_image_once(trained_checkpoint, tmp_path):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    blob_png(d / "one.png")
    blob_png(d / "sub" / "two.png")
    (d / "self").symlink_to(".")
    (d / "sub" / "up").symlink_to("..")
    (d / "again.png").symlink_to(d / "one.png")
    for pattern in (f"{d}/**", f"{d}/**/*.png"):
        # Before: two self-links made `d/**` walk exponentially (a hang); one made an image count 41 times.
        r = subprocess.run([*MNIST, "predict", pattern, "-m", trained_checkpoint], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        paths = [line.split("\t")[0] for line in r.stdout.splitlines()]
        assert paths == [f"{d}/again.png", f"{d}/sub/two.png"] or paths == [f"{d}/one.png", f"{d}/sub/two.png"], paths
