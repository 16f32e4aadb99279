"""A run writes only into an empty folder or one holding a run of ours, deletes only its own files, and a refused run
leaves nothing behind; a run folder from someone else is read as a stranger's file: one line naming file and row."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from conftest import assert_clean_error, assert_refused, invoke, train_run


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
    # Files named like a run's but not a run's are not replaced either.
    (out / ".draft.tmp").unlink()
    r = invoke("train", "-c", tiny_config, "--out", out, "-q", "--overwrite")
    assert_refused(r, "was not written by mnist train", "move it away or choose another --out")
    assert (out / "config.yaml").read_text() == "my: notes\n"


def test_only_our_own_temporary_files_are_removed(tiny_config, tmp_path):
    out = tmp_path / "run"
    assert invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1").exit_code == 0
    ours = out / ".last.pt.ab3_x9zq.tmp"  # what atomic_write names a temporary last.pt
    ours.write_bytes(b"half a save")
    r = invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1", "--overwrite")
    assert r.exit_code == 0 and not ours.exists(), r.output
    (out / ".last.pt.mine.tmp").write_bytes(b"a user's")  # our prefix, not our random part: not ours
    r = invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1", "--overwrite")
    assert_refused(r, "holds files that are not a run's (.last.pt.mine.tmp)")
    assert (out / ".last.pt.mine.tmp").read_bytes() == b"a user's"


def test_an_empty_out_or_a_refused_run_leaves_nothing_behind(tiny_config, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert_refused(invoke("train", "-c", tiny_config, "--out", "", "-q"), "--out is empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "tiny.yaml"]
    big = ["--set", "model.width=65536", "--set", "model.depth=64"]
    assert_refused(invoke("train", "-c", tiny_config, "--out", tmp_path / "a" / "b", *big), "of memory")
    assert not (tmp_path / "a").exists()  # no folder, no lock


def test_a_dry_run_with_a_wrong_data_root_creates_no_folders(tiny_config, tmp_path):
    r = invoke("train", "-c", tiny_config, "--set", f"data.root={tmp_path / 'nowhere'}", "--out", tmp_path / "out", "--dry-run")
    assert_refused(r, "data not found", "a dry run does not download it")
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "out").exists()
    assert not (tmp_path / "cache").exists()


def test_overwrite_replaces_our_run_and_keeps_its_report_folder(tiny_config, tmp_path):
    out = tmp_path / "run"
    assert invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1").exit_code == 0
    (out / "report").mkdir()
    (out / "report" / "report.md").write_text("the old run's report")
    r = invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1", "--overwrite", "--set", "model.width=8")
    assert r.exit_code == 0, r.output
    assert torch.load(out / "best.pt", weights_only=True)["config"]["model"]["width"] == 8
    assert (out / "report" / "report.md").read_text() == "the old run's report"  # never a run's file to delete


# --- a run folder from someone else: report and compare read its record; one line naming file and row, exit 2 ---


@pytest.fixture(scope="module")
def finished(tmp_path_factory, synthetic_root):
    return train_run(tmp_path_factory.mktemp("finished") / "run", synthetic_root, train={"epochs": 1})


def copy_with(finished, tmp_path, name: str, text: str | None = None):
    """A copy of a finished run whose `name` holds `text` (or is removed when text is None)."""
    run = shutil.copytree(finished, tmp_path / "theirs")
    if text is not None:
        (run / name).write_text(text)
    return run


def epoch_row(finished, **change) -> str:
    row = next(json.loads(line) for line in (finished / "events.jsonl").read_text().splitlines() if '"kind": "epoch"' in line)
    return json.dumps(row | change, allow_nan=True) + "\n"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"train_loss": None}, "train_loss is null, not a number"),
        ({"train_loss": [1]}, "train_loss is [1], not a number"),
        ({"val_accuracy": {"a": 1}}, 'val_accuracy is {"a": 1}, not a fraction or null'),
        ({"seconds": "1"}, 'seconds is "1", not a number'),
        ({"epoch": "x"}, 'epoch is "x", not a count'),
        ({"epoch": None}, "epoch is null, not a count"),
        ({"epoch": 1.5}, "epoch is 1.5, not a count"),
        ({"seconds": float("nan")}, "seconds is NaN"),
        ({"seconds": 1e308}, "seconds is 1e+308"),
        ({"epoch": -5}, "epoch is -5, not a count"),
        ({"val_accuracy": 7.0}, "val_accuracy is 7.0, not a fraction"),
        ({"kind": "weights"}, 'kind "weights" is none of'),
    ],
)
def test_a_row_that_is_not_a_record_is_one_line_naming_the_file_and_row(finished, tmp_path, change, fragment):
    run = copy_with(finished, tmp_path, "events.jsonl", epoch_row(finished) + epoch_row(finished, **change))
    for command in (["report", run], ["compare", finished, run]):
        assert_clean_error(invoke(*command), f"{run / 'events.jsonl'}, line 2: {fragment}")


def test_a_fifo_a_device_or_a_result_that_is_not_ours_is_one_line(finished, tmp_path):
    run = copy_with(finished, tmp_path, "events.jsonl")
    for make in (os.mkfifo, lambda p: p.symlink_to("/dev/zero")):
        (run / "events.jsonl").unlink()
        make(run / "events.jsonl")  # a FIFO would block a reader forever; /dev/zero would fill the memory
        assert_clean_error(invoke("compare", finished, run), "events.jsonl is not a regular file")
    run = copy_with(finished, tmp_path / "other", "result.json", '{"test_accuracy": "high"}')
    assert_clean_error(invoke("compare", finished, run), 'result.json: test_accuracy is "high", not a fraction')
