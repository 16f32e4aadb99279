"""Every command ends quietly with exit 141 (128 + SIGPIPE) when the reader of its output goes away, as `cat` does.

Real processes writing into a real pipe: `mnist ... | head -1` without the shell. Where a command prints more than
the pipe holds, the reader takes one line and leaves; where it prints less, the reader leaves before the first line
(otherwise the whole output could fit in the pipe before the reader left, and exit 0 would be right).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import typer
from conftest import MNIST
from PIL import Image

from mnist_cli.cli import app

PIPE_BYTES = 4096  # the smallest pipe Linux allows: outputs longer than this cannot hide in it
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def run_into_closed_pipe(args: list[str], cwd: Path, lines: int) -> tuple[int, bytes, str]:
    """Run `python -m mnist_cli ARGS > pipe`, read `lines` lines from the pipe, close it; (exit code, read, stderr)."""
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, F_SETPIPE_SZ, PIPE_BYTES)
    proc = subprocess.Popen([*MNIST, *args], cwd=cwd, stdout=write_fd, stderr=subprocess.PIPE)
    os.close(write_fd)
    got = b""
    with os.fdopen(read_fd, "rb", buffering=0) as reader:
        while got.count(b"\n") < lines:
            byte = reader.read(1)
            if not byte:
                break
            got += byte
    # The reader is gone now: every later write meets a closed pipe.
    stderr = proc.stderr.read().decode()
    return proc.wait(timeout=120), got, stderr


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pipe-images")
    for i in range(12):  # --show draws ~2.5 KB per image: 12 overflow the pipe
        Image.fromarray(np.pad(np.full((10, 6), 255, np.uint8), 9 + i % 3)).save(folder / f"bar{i:02}.png")
    return folder


COMMANDS = sorted(typer.main.get_command(app).commands)  # every command's --help, so a new command is covered
CASES = {
    "help": (["--help"], 0),
    "version": (["--version"], 0),
    **{f"{command} help": ([command, "--help"], 0) for command in COMMANDS},
    "train": (["train", "{config}", "-q", "--out", "run"], 0),
    "train json": (["train", "{config}", "-q", "--out", "run-json", "--json"], 0),
    "eval": (["eval", "{ckpt}"], 0),
    "predict": (["predict", "{images}", "-m", "{ckpt}"], 0),
    "predict show": (["predict", "{images}", "-m", "{ckpt}", "--show"], 1),
    "predict json": (["predict", "{images}", "-m", "{ckpt}", "--json"], 0),  # one write of ~4 KB
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_reader_that_goes_away_ends_the_command_with_141(case, tiny_config, trained_checkpoint, images, tmp_path):
    args, lines = CASES[case]
    args = [a.format(config=tiny_config, ckpt=trained_checkpoint, images=images) for a in args]
    code, got, stderr = run_into_closed_pipe(args, tmp_path, lines)
    assert code == 141, f"exit {code}\n{stderr}"  # before: 1, from rich's console (or typer's echo)
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert got.count(b"\n") == lines
