"""docs/check_readme.py: the README's blocks parse, and a drifted block is caught."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_real_data

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docs"))

import check_readme  # noqa: E402


def test_every_readme_block_parses_into_mnist_commands():
    blocks = check_readme.parse((REPO / "README.md").read_text())
    assert len(blocks) >= 10
    for block in blocks:
        assert block.steps, f"README line {block.line}: a console block without a `$ ` command"
        assert block.modes <= {"skip", "slow", "tty"}, block
        for step in block.steps:
            assert step.command.split()[0] in ("mnist", "make", "echo"), step.command


def test_masks_keep_accuracies_and_hide_timings_and_float_noise():
    a = check_readme.normalize(["epoch 1/4  train_loss 0.8627  val_loss 0.2181  val_acc 95.72%  62.1s  885 samples/s  *best"])
    b = check_readme.normalize(["epoch 1/4  train_loss 0.8626  val_loss 0.2183  val_acc 95.72%  1.4s  39,592 samples/s  *best"])
    assert a == b
    assert check_readme.normalize(["val_acc 95.72%"]) != check_readme.normalize(["val_acc 95.73%"])
    assert check_readme.matches(["a", " ...", "d"], ["a", "b", "c", "d"])
    assert not check_readme.matches(["a", "d"], ["a", "b", "d"])


def run_checker(readme: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "docs" / "check_readme.py"), "--readme", str(readme), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_block_that_drifted_from_what_the_command_prints_fails(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "```console\n"
        "$ mnist train -c configs --dry-run\n"
        "error: configs: no such file\n"  # what it said before: the checker must notice
        "$ echo $?\n"
        "2\n"
        "```\n"
    )
    r = run_checker(readme)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "-error: configs: no such file" in r.stdout
    assert "+error: configs: is a folder; give a YAML file (such as configs/default.yaml)" in r.stdout
    readme.write_text(readme.read_text().replace("no such file", "is a folder; give a YAML file (such as configs/default.yaml)"))
    r = run_checker(readme)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the 2 commands of 1 blocks print what the README says" in r.stdout


@pytest.mark.slow
def test_the_readme_fast_blocks_print_what_they_say(monkeypatch):
    require_real_data()
    from conftest import REAL_DATA

    monkeypatch.setenv("MNIST_DATA_DIR", str(REAL_DATA))
    r = run_checker(REPO / "README.md", "--fast")
    assert r.returncode == 0, r.stdout + r.stderr
