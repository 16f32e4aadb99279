"""Unreadable folders and files, odd lock files and over-long names: one line naming the path and what is wrong.

Root reads everything, so the commands run as real processes without root's bypass: `setpriv` drops
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER from the bounding set (still uid 0, so the test's own files stay
reachable where their modes allow). Run as another user, the commands run as that user, who has no bypass anyway.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import MNIST, assert_refused, blob_png, invoke, one_error_line

DROP = "-dac_override,-dac_read_search,-fowner"
LONG = "x" * 300  # a path component over the 255 bytes a file system allows


@functools.cache  # one probe a session
def _without_bypass() -> list[str]:
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop root's permission bypass")
    probe = subprocess.run(["setpriv", f"--bounding-set={DROP}", f"--inh-caps={DROP}", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop capabilities here ({probe.stderr.decode().strip()})")
    return ["setpriv", f"--bounding-set={DROP}", f"--inh-caps={DROP}", "--"]


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    """The real command, without root's bypass of permission bits."""
    return subprocess.run([*_without_bypass(), *MNIST, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def folders(tmp_path):
    """ok/ (an image), closed/ (mode 000), listonly/ (mode 644: names readable, files not)."""
    for name in ("ok", "closed", "listonly"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        blob_png(tmp_path / "imgs" / name / "one.png")
    (tmp_path / "imgs" / "closed").chmod(0o000)
    (tmp_path / "imgs" / "listonly").chmod(0o644)
    yield tmp_path / "imgs"
    for name in ("closed", "listonly"):
        (tmp_path / "imgs" / name).chmod(0o755)


def test_predict_names_each_unreadable_folder_or_file_and_predicts_the_rest(folders, trained_checkpoint):
    """Each one given by name, then all of them met by a glob: one line for each, and the readable image predicted."""
    names = ["closed", "listonly", "listonly/one.png"]
    r = run("predict", *[folders / name for name in names], f"{folders}/*", "-m", trained_checkpoint, cwd=folders)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    closed = f"error: {folders}/closed: cannot open this folder (permission denied)"
    listonly = f"error: {folders}/listonly: cannot open the files in this folder (permission denied)"
    one = f"error: {folders}/listonly/one.png: permission denied"
    assert r.stderr.splitlines() == [closed, listonly, one, closed, listonly]
    assert r.stdout.startswith(f"{folders}/ok/one.png\t"), r.stdout


@pytest.mark.parametrize("shut", ["folder", "file"])
def test_eval_of_an_unreadable_checkpoint_or_one_in_a_folder_without_execute_permission(trained_checkpoint, tmp_path, shut):
    path = tmp_path / "shut" / "best.pt"
    path.parent.mkdir()
    shutil.copy(trained_checkpoint, path)
    closed = path.parent if shut == "folder" else path
    closed.chmod(0o644 if shut == "folder" else 0o000)
    try:
        r = run("eval", path, cwd=tmp_path)
    finally:
        closed.chmod(0o755)
    assert r.returncode == 2, r.stderr
    line = one_error_line(r.stderr)  # permission denied, not "not a checkpoint"
    assert "permission denied" in line and "not a checkpoint" not in line, line
    assert shut == "file" or f"{path}: cannot read the checkpoint (permission denied)" in line


def test_a_data_root_whose_raw_folder_is_unreadable(synthetic_root, tmp_path, tiny_config):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    (root / "MNIST" / "raw").chmod(0o000)
    try:
        r = run("train", "-c", tiny_config, "--set", f"data.root={root}", "--dry-run", cwd=tmp_path)
    finally:
        (root / "MNIST" / "raw").chmod(0o755)
    assert_refused(r, "raw", "permission denied")


def test_an_unwritable_lock_left_by_sudo_is_named(tiny_config, tmp_path):
    out = tmp_path / "run"
    assert invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1").exit_code == 0
    (out / ".lock").chmod(0o444)  # left by an earlier `sudo mnist train`: not writable by the user
    r = run("train", "-c", tiny_config, "--out", out, "--overwrite", "-q", "--epochs", "1", cwd=tmp_path)
    assert_refused(r, f"cannot open the run's lock file {out / '.lock'} (permission denied)")


def test_a_lock_that_is_a_folder_is_named(tiny_config, tmp_path):
    out = tmp_path / "run"
    (out / ".lock").mkdir(parents=True)
    r = invoke("train", "-c", tiny_config, "--out", out, "-q")
    assert_refused(r, f"cannot open the run's lock file {out / '.lock'} (it is a folder)")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", f"{LONG}.png", "-m", "CKPT"], "longer than the file system allows"),
        (["eval", f"{LONG}.pt"], "longer than the file system allows"),
        (["train", "-c", f"{LONG}.yaml"], "longer than the file system allows"),
        (["train", "--resume", f"{LONG}/last.pt"], "longer than the file system allows"),
    ],
)
def test_a_path_component_over_255_characters(trained_checkpoint, tmp_path, args, message):
    assert_refused(invoke(*[trained_checkpoint if a == "CKPT" else a for a in args]), message)


def test_setpriv_really_drops_the_bypass(tmp_path):
    # The tests above mean something only if the mechanism works: a mode-000 file is unreadable through it.
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0o000)
    r = subprocess.run([*_without_bypass(), "cat", str(secret)], capture_output=True, text=True)
    assert r.returncode != 0 and "Permission denied" in r.stderr
