"""Default run folders: named by the config and the overrides that change it, so experiments never collide; names made
of settings are readable, distinct for distinct settings and safe on every file system."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from conftest import invoke, write_config

from mnist_cli.naming import MAX_NAME_CHARS, settings_name
from mnist_cli.training.plan import plan_run


def root() -> Path:
    return Path(os.environ["MNIST_CHECKPOINT_DIR"])


@pytest.mark.parametrize(
    ("overrides", "shortcuts", "folder"),
    [
        (["train.epochs=3", "model.width=48"], {}, "model.width=48,train.epochs=3"),  # the config's order, not the typed one
        (["train.epochs=3", "model.width=48", "train.lr=0.003"], {}, "model.width=48,train.epochs=3"),  # lr 0.003: the file's
        ([], {}, ""),
        (["train.epochs=2", "train.device=cpu", "data.root=DATA"], {}, ""),  # repeats the file or only moves the run
        (["train.lr=0.01", "model.depth=2"], {}, "model.depth=2,train.lr=0.01"),
        ([], {"train.lr": 0.01, "model.depth": 2, "train.device": "cpu"}, "model.depth=2,train.lr=0.01"),  # shortcuts: the same
    ],
)
def test_only_overrides_that_change_the_config_name_the_folder(tiny_config, synthetic_root, overrides, shortcuts, folder):
    overrides = [o.replace("DATA", str(synthetic_root)) for o in overrides]
    assert plan_run(tiny_config, overrides, shortcuts=shortcuts).run_dir.path == root() / "tiny" / folder
    assert plan_run(None).run_dir.path == root() / "default"


def test_long_values_are_shortened_with_a_hash(tiny_config):
    plan = plan_run(tiny_config, ["model.depth=12", "model.width=[" + ",".join(["1024"] * 12) + "]"])
    name = plan.run_dir.path.name
    assert name.startswith("model.depth=12,model.width=") and "~" in name and len(name) <= 120, name


def test_different_experiments_never_meet_and_the_same_command_finds_its_run(tiny_config):
    first = invoke("train", "-c", tiny_config, "-q", "--epochs", "1")
    assert first.exit_code == 0, first.output
    other = invoke("train", "-c", tiny_config, "-q", "--epochs", "1", "--width", "16")
    assert other.exit_code == 0, other.output  # before: refused, both went to checkpoints/tiny/
    assert (root() / "tiny" / "train.epochs=1" / "best.pt").is_file()
    assert (root() / "tiny" / "model.width=16,train.epochs=1" / "best.pt").is_file()
    again = invoke("train", "-c", tiny_config, "-q", "--epochs", "1")
    assert again.exit_code == 2, again.output
    assert "train.epochs=1 already holds a run" in again.stderr and "--resume auto" in again.stderr
    resumed = invoke("train", "-c", tiny_config, "-q", "--epochs", "1", "--resume", "auto")
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming from {root() / 'tiny' / 'train.epochs=1' / 'last.pt'}" in resumed.stderr


def test_a_dry_run_says_the_folder_the_size_and_the_real_device(tiny_config):
    r = invoke("train", tiny_config, "--width", "16", "--dry-run")  # the config given without -c
    assert r.exit_code == 0, r.output
    # 784*16+16 + 16*10+10 parameters; `device: cpu` in the file.
    assert r.stdout.strip() == f"preflight passed; would train 12,730 parameters on cpu into {root() / 'tiny' / 'model.width=16'}"
    r = invoke("train", tiny_config, "--dry-run", "--json", "--device", "auto")
    assert r.exit_code == 0, r.output
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert json.loads(r.stdout) == {
        "dry_run": "passed",
        "out_dir": str(root() / "tiny"),
        "device": expected,  # before: "auto", what was asked rather than what it would use
        "parameters": 25_450,
    }
    assert not root().exists()


def test_more_shortcuts_reach_the_config(tiny_config, synthetic_root, tmp_path):
    r = invoke(
        "train", tiny_config, "--lr", "0.01", "--batch-size", "16", "--depth", "2", "--width", "8",
        "--data-root", synthetic_root, "-o", tmp_path / "o", "-q", "--epochs", "1",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    resolved = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert resolved["train"]["lr"] == 0.01 and resolved["train"]["batch_size"] == 16
    assert resolved["model"]["depth"] == 2 and resolved["model"]["width"] == 8
    assert resolved["data"]["root"] == str(synthetic_root)


def test_two_configs_a_folder_as_config_and_a_file_as_data_root_are_named_for_what_they_are(tmp_path, tiny_config):
    r = invoke("train", tiny_config, "-c", write_config(tiny_config.parent / "other.yaml"), "--dry-run")
    assert r.exit_code == 2 and "two configs given" in r.stderr, r.output
    r = invoke("train", "-c", tmp_path, "--dry-run")
    assert r.exit_code == 2 and f"error: {tmp_path}: is a folder; give a YAML file" in r.stderr, r.output
    r = invoke("train", tiny_config, "--set", "data.root=/dev/null", "--dry-run")
    assert r.exit_code == 2, r.output  # before: trained on the cached data, silently
    assert "data.root: /dev/null is not a folder" in r.stderr


# --- folder names made of settings: readable, distinct for distinct settings, safe on every file system ---


def test_readable_names_for_ordinary_settings():
    assert settings_name({"model.width": 512, "train.epochs": 3}) == "model.width=512,train.epochs=3"
    assert settings_name({"depth": 2, "width": [256, 128]}) == "depth=2,width=[256,128]"
    assert settings_name({"model.activation": "relu", "train.amp": True}) == "model.activation=relu,train.amp=true"
    assert settings_name({}) == "defaults"


@pytest.mark.parametrize("value", ["/tmp/a b", "../up", ".hidden", "x" * 300, "a:b*c?d", "é", "1\n2", "CON"])
def test_unsafe_or_long_values_become_safe_distinct_names(value):
    name = settings_name({"data.root": value})
    assert len(name) <= MAX_NAME_CHARS
    assert "/" not in name and "\\" not in name and "\n" not in name and not name.startswith(".")
    assert name != settings_name({"data.root": value + "!"})


def test_similar_values_that_sanitise_alike_stay_apart():
    assert settings_name({"k": "a b"}) != settings_name({"k": "a_b"}) != settings_name({"k": "a:b"})
