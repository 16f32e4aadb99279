"""The `mnist` command driven through typer's CliRunner on synthetic data, and end to end on the real MNIST."""

from __future__ import annotations

import json
import os
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REAL_DATA, assert_clean_error, epoch_records, invoke
from digit_styles import large_black_on_white, read_mnist_test
from rich.console import Console

from mnist_cli.cli.evaluate import truth_table_view
from mnist_cli.evaluate import TableRow
from mnist_cli.record import read_result


def test_train_writes_every_artifact_into_the_configs_folder_and_reports_json(tiny_config):
    r = invoke("train", "--config", tiny_config, "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    for key in ("checkpoint", "val_accuracy", "test_accuracy", "epochs", "train_seconds", "samples_per_second"):
        assert key in result
    assert result["test_accuracy"] > 0.9, result  # synthetic bars are easy to learn
    run = Path(os.environ["MNIST_CHECKPOINT_DIR"]) / "tiny"  # named after the config
    assert {p.name for p in run.iterdir()} >= {"best.pt", "last.pt", "config.yaml", "events.jsonl", "result.json"}
    rows = epoch_records(run)
    assert [m.epoch for m in rows] == [1, 2]
    assert all(m.val_accuracy is not None and m.train_loss > 0 and m.seconds > 0 for m in rows)
    assert max(m.val_accuracy for m in rows) == result["val_accuracy"]
    # Progress is plain lines on stderr when it is not a terminal.
    assert "epoch 1/2  train_loss" in r.stderr and "epoch 2/2" in r.stderr
    assert "\r" not in r.stderr and "\x1b[" not in r.stderr


def test_shortcuts_and_set_reach_the_resolved_config(tiny_config, tmp_path):
    r = invoke(
        "train", "-c", tiny_config, "--set", "model.width=[16]", "--epochs", "1", "--seed", "5", "--out", tmp_path / "o", "-q"
    )
    assert r.exit_code == 0, r.output
    assert "checkpoint:" in r.stdout and r.stderr == ""
    resolved = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert (resolved["model"]["width"], resolved["train"]["epochs"], resolved["seed"]) == ([16], 1, 5)


def test_eval_reproduces_the_training_report_on_test_and_val_and_renders_tables(trained_checkpoint):
    stored = torch.load(trained_checkpoint, weights_only=True)["metrics"]
    test, val, tables = (
        invoke("eval", trained_checkpoint, *a) for a in (["--json", "--device", "cpu"], ["--split", "val", "--json"], [])
    )
    assert (test.exit_code, val.exit_code, tables.exit_code) == (0, 0, 0), test.output + val.output + tables.output
    result = json.loads(test.stdout)
    assert result["accuracy"] == pytest.approx(read_result(trained_checkpoint.parent).test_accuracy)
    assert result["n"] == 200 and len(result["per_class"]) == 10 and sum(map(sum, result["confusion"])) == 200
    assert json.loads(val.stdout)["accuracy"] == pytest.approx(stored["val_accuracy"])
    assert "per-class accuracy" in tables.stdout and "confusion matrix" in tables.stdout


def digit_image(path: Path, index: int) -> tuple[Path, int]:
    """Real MNIST test digit `index`, large and dark on light like a photo of paper, and its label.

    (The synthetic bars encode the class by position, which MNIST-style centring rightly removes.)
    """
    digits, labels = read_mnist_test(REAL_DATA, index + 1)
    path.write_bytes(large_black_on_white(digits[index], np.random.default_rng(index))[0])
    return path, int(labels[index])


@pytest.mark.slow  # trains on the real MNIST (real_checkpoint)
def test_predict_uses_the_newest_checkpoint_says_which_and_reports_bad_files_but_predicts_the_rest(real_checkpoint, tmp_path):
    root = Path(os.environ["MNIST_CHECKPOINT_DIR"]) / "run"
    root.mkdir(parents=True)
    (root / "best.pt").write_bytes(real_checkpoint.read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    good, label = digit_image(tmp_path / "two.png", 1)
    r = invoke("predict", good, tmp_path / "notes.txt", tmp_path / "missing.png", "--json")
    assert r.exit_code == 2, r.output
    assert "using checkpoint" in r.stderr and "run/best.pt" in r.stderr
    rows = json.loads(r.stdout)
    assert [row.get("prediction") for row in rows] == [label, None, None] and len(rows[0]["top_k"]) == 3
    assert [row["path"] for row in rows] == [str(good), str(tmp_path / "notes.txt"), str(tmp_path / "missing.png")]
    assert rows[1]["error"].startswith("not a readable image") and rows[2]["error"] == "no such file"
    assert "notes.txt: not a readable image" in r.stderr and "missing.png: no such file" in r.stderr


@pytest.mark.slow  # end to end on the real MNIST: `mnist train` (real_checkpoint, gated at 97%) then `mnist eval`
def test_short_training_reaches_97_percent_and_eval_agrees(real_checkpoint, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(REAL_DATA))
    r = invoke("eval", real_checkpoint, "--json")
    assert r.exit_code == 0, r.output
    evaluation = json.loads(r.stdout)
    assert evaluation["n"] == 10_000
    assert evaluation["accuracy"] == pytest.approx(read_result(real_checkpoint.parent).test_accuracy)
    assert evaluation["accuracy"] >= 0.97 and min(evaluation["per_class"]) > 0.9


def test_config_mistakes_are_one_message_and_exit_2(tmp_path):
    r = invoke("train", "--set", "model.widht=3", "--set", "train.lr=-1")
    assert r.exit_code == 2, r.output
    assert "model.widht: unknown key (did you mean 'width'?)" in r.stderr
    assert "train.lr: Input should be greater than 0 (got -1)" in r.stderr and isinstance(r.exception, SystemExit)
    assert r.stderr.startswith("error: config: 2 problems\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "-c", "nope.yaml"], "nope.yaml: no such file"),
        (["train", "--device", "cuda:7", "--set", "train.epochs=1"], "cuda"),
        (["eval", "missing.pt"], "no such checkpoint: missing.pt"),
        (["eval", "{ckpt}", "--device", "foo"], "device 'foo': must be auto, cpu, cuda, cuda:N or mps"),
        (["eval", "{ckpt}", "--device", "meta"], "device 'meta': must be"),
        (["predict", "x.png"], "no best.pt under"),
        (["predict", "-m", "{ckpt}", "nothing-*.png"], "nothing-*.png: no files match"),
    ],
)
def test_user_mistakes_exit_2_without_traceback(args, message, trained_checkpoint):
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine really has cuda:7")
    assert_clean_error(invoke(*[a.replace("{ckpt}", str(trained_checkpoint)) for a in args]), message)


def test_a_truth_table_at_p_one_half_says_each_answer_is_a_tie():
    rows = [TableRow([0, 0], 0, 1, [0.5, 0.5]), TableRow([1, 1], 0, 0, [0.9, 0.1])]
    buf = StringIO()
    Console(file=buf, width=80).print(truth_table_view(rows, "xor"))
    lines = buf.getvalue().splitlines()
    assert [line.split("│")[5].strip() for line in lines if line.startswith("│")] == ["1 (tie)", "0"], lines
    assert "(tie): P(1) = P(0), the output is a coin toss" in buf.getvalue()
