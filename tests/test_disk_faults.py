"""Full, immutable and inode-less disks on real processes, and the dataset cache's first use by several at once.

Each fault is made for real: `chattr +i` on the run folder mid-run, a tmpfs with a handful of inodes (mounted in a
private mount namespace with `unshare -m`, so nothing outlives the test). Both need root; without it they skip.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MNIST, REAL_DATA, Stderr, one_error_line, require_real_data, start, wait_for, write_config, write_mnist

from mnist_cli.checkpoint import load_checkpoint


def _can(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_a_folder_made_immutable_mid_run_is_one_line_and_keeps_last_pt(tmp_path):
    probe = tmp_path / "probe"
    probe.mkdir()
    if not shutil.which("chattr") or not _can(["chattr", "+i", str(probe)]):
        pytest.skip("chattr +i is not available here (needs root on ext4/xfs/btrfs)")
    subprocess.run(["chattr", "-i", str(probe)], check=True)
    cfg = write_config(tmp_path / "wide.yaml", model={"depth": 2, "width": 512}, train={"epochs": 3, "save_every_steps": 1})
    out = tmp_path / "run"
    proc = start(["train", "-c", cfg, "--out", out, "-q"], tmp_path)
    err = Stderr(proc)
    try:
        assert wait_for(lambda: (out / "last.pt").exists())
        subprocess.run(["chattr", "+i", str(out)], check=True)
        code = proc.wait(timeout=60)
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=False)
    line = one_error_line(err.text())
    assert code == 2, line
    assert "cannot write" in line and "Operation not permitted" in line and "is intact" in line, line
    load_checkpoint(out / "last.pt")  # the previous save, whole


def _in_a_tiny_tmpfs(folder: Path, inodes: int, command: list) -> subprocess.CompletedProcess:
    """Run `command` with `folder` a fresh tmpfs of `inodes` inodes, in a private mount namespace."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = f"mount -t tmpfs -o size=64m,nr_inodes={inodes} tmpfs {folder}"
    # The check runs in the same namespace: the tmpfs and what was written to it vanish with it.
    script = f"{mount} && {shlex.join(map(str, command))}; code=$?; ls -a {folder}; exit $code"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)


needs_mounts = pytest.mark.skipif(
    os.geteuid() != 0 or not _can(["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"]),
    reason="mounting a tmpfs in a private mount namespace needs root (unshare -m)",
)


@needs_mounts
def test_running_out_of_inodes_mid_run_is_one_line_and_keeps_the_saved_files(tmp_path, trained_checkpoint):
    # Inodes for the folder and every file a run has after one epoch (a finished TINY run's, but result.json, written
    # at the end); epoch 2's first temporary file is one too many.
    cfg = write_config(tmp_path / "tiny.yaml", train={"epochs": 3})
    inodes = 1 + len([p for p in trained_checkpoint.parent.iterdir() if p.name != "result.json"])
    out = tmp_path / "run"
    check = f"from mnist_cli.checkpoint import load_checkpoint as l; l('{out}/last.pt'); l('{out}/best.pt'); print('intact')"
    train = shlex.join(map(str, [*MNIST, "train", "-c", cfg, "--out", out, "-q"]))
    train_then_check = f"{train}; c=$?; {shlex.join([sys.executable, '-c', check])}; exit $c"
    r = _in_a_tiny_tmpfs(out, inodes, ["sh", "-c", train_then_check])
    line = one_error_line(r.stderr)
    assert r.returncode == 2, r.stderr
    assert "cannot write" in line and "No space left on device" in line and "is intact" in line, line
    assert "intact" in r.stdout


@needs_mounts
def test_a_cache_without_free_inodes_is_one_line(tmp_path):
    archives = write_mnist(tmp_path / "gz", gz=True)  # only .gz: they are unpacked into the cache
    cache = tmp_path / "cache"
    env_cmd = ["env", f"MNIST_CACHE_DIR={cache}", *MNIST, "train", "--dry-run", "--set", f"data.root={archives}", "-q"]
    r = _in_a_tiny_tmpfs(cache, 4, env_cmd)
    line = one_error_line(r.stderr)
    assert r.returncode == 2, r.stderr
    assert "No space left on device" in line, line


@pytest.mark.slow
def test_concurrent_first_uses_of_the_cache_all_succeed(tmp_path):
    # Real archives (the MD5 check passes), linked into a folder of their own that holds nothing unpacked.
    require_real_data()
    raw = tmp_path / "gz" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for archive in (REAL_DATA / "MNIST" / "raw").glob("*.gz"):
        (raw / archive.name).symlink_to(archive)
    env = {**os.environ, "MNIST_CACHE_DIR": str(tmp_path / "cache")}
    args = [*MNIST, "train", "--dry-run", "--set", f"data.root={tmp_path / 'gz'}", "--out", tmp_path / "out"]
    procs = [subprocess.Popen(list(map(str, args)), env=env, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, errors
