"""A run writes only into an empty folder or one holding a run of ours, deletes only its own temporary files, and a
refused run leaves nothing behind."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from mnist_cli.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_refused(r, *fragments: str) -> None:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    for fragment in fragments:
        assert fragment in r.stderr, r.stderr


def test_a_folder_holding_someone_elses_files_is_not_trained_into(tiny_config, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("my: notes\n")
    torch.save({"weights": torch.zeros(2)}, out / "best.pt")
    (out / ".draft.tmp").write_text("unsaved work")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for extra in ([], ["--overwrite"]):
        r = invoke("train", "-c", tiny_config, "--out", out, "-q", *extra)
        assert_refused(r, "holds files that are not a run's (.draft.tmp)", "choose another --out")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_files_named_like_ours_but_not_ours_are_not_replaced(tiny_config, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("my: notes\n")
    torch.save({"weights": torch.zeros(2)}, out / "best.pt")
    r = invoke("train", "-c", tiny_config, "--out", out, "-q", "--overwrite")
    assert_refused(r, "was not written by mnist train", "move it away or choose another --out")
    assert (out / "config.yaml").read_text() == "my: notes\n"


def test_only_our_own_temporary_files_are_removed(tiny_config, tmp_path):
    out = tmp_path / "run"
    assert invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1").exit_code == 0
    ours = out / ".last.pt.ab3_x9zq.tmp"  # what atomic_write names a temporary last.pt
    ours.write_bytes(b"half a save")
    r = invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1", "--overwrite")
    assert r.exit_code == 0, r.output
    assert not ours.exists()
    (out / ".last.pt.mine.tmp").write_bytes(b"a user's")  # our prefix, not our random part: not ours
    r = invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1", "--overwrite")
    assert_refused(r, "holds files that are not a run's (.last.pt.mine.tmp)")
    assert (out / ".last.pt.mine.tmp").read_bytes() == b"a user's"


def test_an_empty_out_is_refused(tiny_config, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    r = invoke("train", "-c", tiny_config, "--out", "", "-q")
    assert_refused(r, "--out is empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "tiny.yaml"]


def test_a_refused_run_leaves_no_folder_and_no_lock(tiny_config, tmp_path):
    out = tmp_path / "a" / "b"
    r = invoke("train", "-c", tiny_config, "--out", out, "--set", "model.width=65536", "--set", "model.depth=64")
    assert_refused(r, "of memory")
    assert not (tmp_path / "a").exists()


def test_a_dry_run_with_a_wrong_data_root_creates_no_folders(tiny_config, tmp_path):
    r = invoke("train", "-c", tiny_config, "--set", f"data.root={tmp_path / 'nowhere'}", "--out", tmp_path / "out", "--dry-run")
    assert_refused(r, "data not found", "a dry run does not download it")
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "out").exists()
    assert not (tmp_path / "cache").exists()


def test_a_folder_holding_our_run_is_replaced_with_overwrite(tiny_config, tmp_path):
    out = tmp_path / "run"
    assert invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1").exit_code == 0
    r = invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1", "--overwrite", "--set", "model.width=8")
    assert r.exit_code == 0, r.output
    assert torch.load(out / "best.pt", weights_only=True)["config"]["model"]["width"] == 8
