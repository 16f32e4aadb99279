"""A run writes only into an empty folder or one holding a run of ours, deletes only its own temporary files, and a
refused run leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import assert_refused, invoke


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


# --- a run folder from someone else: report and compare read its record; one line naming file and row, exit 2 ---


@pytest.fixture(scope="module")
def finished(tmp_path_factory, synthetic_root):
    from conftest import train_run

    return train_run(tmp_path_factory.mktemp("finished") / "run", synthetic_root, train={"epochs": 1})


def copy_with(finished, tmp_path, name: str, text: str | None = None):
    """A copy of a finished run whose `name` holds `text` (or is removed when text is None)."""
    import shutil

    run = Path(shutil.copytree(finished, tmp_path / "theirs"))
    if text is not None:
        (run / name).write_text(text)
    return run


def epoch_row(finished, **change) -> str:
    import json

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
    from conftest import assert_clean_error

    run = copy_with(finished, tmp_path, "events.jsonl", epoch_row(finished) + epoch_row(finished, **change))
    for command in (["report", run], ["compare", finished, run]):
        assert_clean_error(invoke(*command), f"{run / 'events.jsonl'}, line 2: {fragment}")


def test_a_fifo_or_a_device_as_the_record_is_refused_at_once(finished, tmp_path):
    import os

    from conftest import assert_clean_error

    run = copy_with(finished, tmp_path, "events.jsonl")
    for make in (lambda p: os.mkfifo(p), lambda p: p.symlink_to("/dev/zero")):
        (run / "events.jsonl").unlink()
        make(run / "events.jsonl")  # a FIFO would block a reader forever; /dev/zero would fill the memory
        assert_clean_error(invoke("compare", finished, run), "events.jsonl is not a regular file")


def test_a_result_that_is_not_ours_is_one_line(finished, tmp_path):
    from conftest import assert_clean_error

    run = copy_with(finished, tmp_path, "result.json", '{"test_accuracy": "high"}')
    assert_clean_error(invoke("compare", finished, run), 'result.json: test_accuracy is "high", not a fraction')


def test_the_report_folder_of_a_run_does_not_block_overwrite(tiny_config, tmp_path):
    out = tmp_path / "run"
    assert invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1").exit_code == 0
    (out / "report").mkdir()
    (out / "report" / "report.md").write_text("the old run's report")
    r = invoke("train", "-c", tiny_config, "--out", out, "-q", "--epochs", "1", "--overwrite")
    assert r.exit_code == 0, r.output
    assert (out / "report" / "report.md").read_text() == "the old run's report"  # never a run's file to delete
