"""`mnist compare` on synthetic runs: only the settings that differ, the runs' numbers, one overlaid figure,
a rich table on a terminal and tab-separated lines when piped (its refusals: test_report)."""

from __future__ import annotations

import json
import os
import shutil
from io import StringIO
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, epoch_records, invoke, train_run
from PIL import Image
from rich.console import Console

from mnist_cli.cli.compare import render_comparison
from mnist_cli.config import validate
from mnist_cli.record import read_result
from mnist_cli.report.compare import ComparedRun, Comparison, differing_settings, run_names

COMPARE_PIXELS = (1100, 420)  # figures.COMPARE_SIZE at figures.DPI


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_root, finished_run) -> tuple[Path, Path]:
    """Two runs that differ in width and learning rate and in nothing else."""
    narrow = train_run(tmp_path_factory.mktemp("compare") / "narrow", synthetic_root, model={"width": 8}, train={"lr": 0.01})
    return finished_run, narrow


def test_compare_shows_only_the_keys_that_differ_and_each_runs_numbers(runs, tmp_path):
    r = invoke("compare", *runs, "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["differing_keys"] == ["model.width", "train.lr"]
    assert [row["settings"] for row in result["runs"]] == [
        {"model.width": 32, "train.lr": 0.003},
        {"model.width": 8, "train.lr": 0.01},
    ]
    for row, run in zip(result["runs"], runs, strict=True):
        best = torch.load(run / "best.pt", weights_only=True)
        metrics = epoch_records(run)
        assert row["name"] == run.name
        assert row["parameters"] == sum(v.numel() for v in best["model_state"].values())  # no buffers in these nets
        assert row["epochs"] == len(metrics) == 2
        assert row["best_val_accuracy"] == max(m.val_accuracy for m in metrics)
        assert row["test_accuracy"] == read_result(run).test_accuracy
        assert row["train_seconds"] == pytest.approx(sum(m.seconds for m in metrics))
    assert [row["parameters"] for row in result["runs"]] == [784 * 32 + 32 + 32 * 10 + 10, 784 * 8 + 8 + 8 * 10 + 10]
    assert result["files"] == [str(tmp_path / "compare.png"), str(tmp_path / "compare.md")]
    image = Image.open(tmp_path / "compare.png")
    assert image.size == COMPARE_PIXELS and len(image.convert("RGB").getcolors(1 << 16)) > 20  # drawn, not blank
    table = (tmp_path / "compare.md").read_text()
    assert "| run | model.width | train.lr | parameters | epochs | best val acc | test acc | train s |\n|---|" in table


def test_compare_piped_prints_a_tab_separated_table_and_says_where_files_went(runs):
    r = invoke("compare", *runs)
    assert r.exit_code == 0, r.output
    header = ["run", "model.width", "train.lr", "parameters", "epochs", "best val acc", "test acc", "train s"]
    lines = [line.split("\t") for line in r.stdout.splitlines()]
    assert lines[0] == header and [cells[:4] for cells in lines[1:]] == [
        ["run", "32", "0.003", "25,450"],
        ["narrow", "8", "0.01", "6,370"],
    ]
    assert len(lines) == 3
    out = Path(os.environ["MNIST_CHECKPOINT_DIR"]) / "compare" / "run+narrow"
    assert r.stderr.strip() == f"wrote {out / 'compare.png'} and {out / 'compare.md'}"
    assert (out / "compare.png").is_file()


def test_compare_on_a_terminal_is_a_rich_table_that_shows_every_run_name_whole_at_80_columns():
    row = ComparedRun("a[/]", Path("a"), {"model.width": 64}, 50890, 2, 0.95, None, 1.5)
    buf = StringIO()
    render_comparison(Console(file=buf, force_terminal=True, width=120), Comparison([row], ["model.width"], Path("o"), []))
    text = buf.getvalue()
    assert "┃" in text and "a[/]" in text and "50,890" in text and "95.00%" in text and "n/a" in text
    # Four runs named alike: at a terminal's 80 columns each name must still be told apart (no `sigmoi…`).
    names = ["relu-8", "relu-8-kaiming", "sigmoid-8", "sigmoid-8-xavier"]
    settings = {"model.activation": "sigmoid", "model.init": "xavier"}
    rows = [ComparedRun(n, Path(n), settings, 669706, 2, 0.9257, 0.9257, 12.5) for n in names]
    buf = StringIO()
    render_comparison(Console(file=buf, force_terminal=True, width=80), Comparison(rows, list(settings), Path("o"), []))
    assert "…" not in buf.getvalue() and all(name in buf.getvalue() for name in names), buf.getvalue()


def test_differing_settings_counts_a_key_that_differs_in_any_config_in_the_schemas_order():
    configs = [validate({"seed": 1}), validate({"model": {"depth": 3}}), validate({"seed": 1, "train": {"device": "cuda"}})]
    # The device says where a run happened, not what it computed: never a difference.
    assert differing_settings(configs) == [
        {"seed": 1, "model.depth": 2},
        {"seed": 0, "model.depth": 3},
        {"seed": 1, "model.depth": 2},
    ]
    # The second run differs in init, the third in activation: the columns still follow the schema.
    runs = [validate({}), validate({"model": {"init": "kaiming"}}), validate({"model": {"activation": "sigmoid"}})]
    assert list(differing_settings(runs)[0]) == ["model.activation", "model.init"]


def test_runs_with_the_same_folder_name_are_told_apart_by_their_parents():
    assert run_names([Path("/x/relu/run"), Path("/x/sigmoid/run")]) == ["relu/run", "sigmoid/run"]


def test_compare_needs_two_different_runs(runs):
    assert_clean_error(invoke("compare", runs[0]), "at least two runs")
    assert_clean_error(invoke("compare", runs[0], runs[0] / "best.pt"), "the same run is given twice")


def test_a_run_folder_of_the_release_before_still_compares_and_reports(runs, tmp_path):
    """metrics.jsonl, health.jsonl and steps.jsonl, no events.jsonl or result.json: best.pt holds the test accuracy."""
    fixtures = Path(__file__).parent / "fixtures"
    old = Path(shutil.copytree(fixtures / "format2-run", tmp_path / "old"))
    shutil.copy(fixtures / "format2-best.pt", old / "best.pt")
    r = invoke("compare", runs[0], old, "--out", tmp_path / "cmp", "--json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["runs"][1]
    assert (row["epochs"], row["best_val_accuracy"], row["test_accuracy"], row["parameters"]) == (2, 1.0, 0.995, 6370)
    r = invoke("report", old, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["test_accuracy"] == 0.995


def test_a_result_json_of_the_release_before_without_node_still_compares(runs, tmp_path):
    """The release before wrote result.json without `node`: it reads as "" instead of refusing the run."""
    old = Path(shutil.copytree(runs[0], tmp_path / "old"))
    result = json.loads((old / "result.json").read_text())
    del result["node"]
    (old / "result.json").write_text(json.dumps(result))
    assert read_result(old).node == ""
    r = invoke("compare", runs[1], old, "--out", tmp_path / "cmp", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["runs"][1]["test_accuracy"] == result["test_accuracy"]
