"""What the terminal sees: rich rendering with strings from checkpoints and file paths, and the training progress bar."""

from __future__ import annotations

import re
from io import StringIO

import numpy as np
import torch
from conftest import invoke
from PIL import Image
from rich.console import Console

from mnist_cli.checkpoint import save_checkpoint
from mnist_cli.cli.evaluate import evaluation_views
from mnist_cli.cli.ui import TrainReporter, render_predictions
from mnist_cli.evaluate import Evaluation
from mnist_cli.inference.predict import Prediction

# Rich markup, an emoji code and a markup escape: each must come out exactly as written.
HOSTILE = ["[/]", "[bold]b", ":smile:", "c\\[d]"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal() -> tuple[Console, StringIO]:
    buf = StringIO()
    return Console(file=buf, force_terminal=True, width=80), buf


def text_of(buf: StringIO) -> str:
    return ANSI.sub("", buf.getvalue())


def evaluation(n_classes: int) -> Evaluation:
    confusion = [[5 if i == j else i for j in range(n_classes)] for i in range(n_classes)]
    per_class = [row[i] / sum(row) for i, row in enumerate(confusion)]
    return Evaluation(accuracy=0.9, loss=0.25, n=sum(map(sum, confusion)), per_class=per_class, confusion=confusion)


def test_eval_tables_print_class_names_as_written_and_use_them_as_matrix_headers():
    console, buf = terminal()
    for view in evaluation_views(evaluation(len(HOSTILE)), HOSTILE, "test split"):
        console.print(view)
    out = text_of(buf)
    per_class, confusion = out.split("per-class accuracy")[1].split("confusion matrix")
    for name in HOSTILE:
        assert re.search(rf"│ {re.escape(name)} +│", per_class), out
    header = next(line for line in confusion.splitlines() if "┃" in line)
    assert [cell.strip() for cell in header.split("┃")[2:-1]] == HOSTILE, out
    assert [line.split("│")[1].strip() for line in confusion.splitlines()[-len(HOSTILE) - 1 : -1]] == HOSTILE, out


def test_eval_and_predict_of_a_checkpoint_with_hostile_class_names_print_them_as_written(trained_checkpoint, tmp_path):
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    ckpt["classes"] = classes = [*HOSTILE, *(f"[red]{i}" for i in range(len(HOSTILE), 10))]
    save_checkpoint(ckpt, tmp_path / "hostile.pt")
    r = invoke("eval", tmp_path / "hostile.pt")
    assert r.exit_code == 0, r.output
    assert all(name in r.stdout for name in classes), r.stdout
    # predict, piped: tab-separated lines.
    Image.fromarray(np.pad(np.full((16, 4), 255, np.uint8), 6)).save(tmp_path / "[b]:x:.png")
    r = invoke("predict", tmp_path / "[b]:x:.png", "-m", tmp_path / "hostile.pt", "--top-k", "10")
    assert r.exit_code == 0, r.output
    [line] = r.stdout.splitlines()
    image, label, probability, top_k = line.split("\t")
    assert image == str(tmp_path / "[b]:x:.png") and label in classes and float(probability) > 0
    assert sorted(t.rpartition(":")[0] for t in top_k.split(" ")) == sorted(classes), line


def prediction(path: str, label: int, uncertain: bool = False) -> Prediction:
    top = [(label, HOSTILE[label], 0.75), (3, HOSTILE[3], 0.25)]
    return Prediction(path, label, HOSTILE[label], 0.75, top, uncertain, np.zeros((28, 28), np.uint8))


RESULTS = [prediction("[/].png", 0), prediction("[b].png", 2, uncertain=True)]


def test_predictions_print_paths_and_labels_as_written_in_a_table_beside_the_input_and_in_plain_lines():
    console, buf = terminal()
    render_predictions(console, RESULTS)
    rows = [line for line in text_of(buf).splitlines() if ".png" in line]
    assert len(rows) == 2, text_of(buf)
    for row, r in zip(rows, RESULTS, strict=True):
        cells = [c.strip() for c in row.split("│")[1:-1]]
        assert cells[:4] == [r.path, r.label, "75.0%", f"{r.label} 75.0%  c\\[d] 25.0%"], row
    assert rows[1].split("│")[-2].strip() == "uncertain"

    console, buf = terminal()
    render_predictions(console, RESULTS, show=True)
    lines = text_of(buf).splitlines()
    assert lines[0].endswith(f"  {RESULTS[0].path}"), lines[0]
    assert lines[1].endswith("  [/]  75.0%  (top-k: [/] 75.0%  c\\[d] 25.0%)"), lines[1]
    assert lines[16].endswith("  :smile:  75.0%  uncertain  (top-k: :smile: 75.0%  c\\[d] 25.0%)"), lines[16]

    buf = StringIO()
    render_predictions(Console(file=buf, width=80), RESULTS)
    assert buf.getvalue().splitlines() == [
        "[/].png\t[/]\t0.7500\t[/]:0.750 c\\[d]:0.250",
        "[b].png\t:smile:\t0.7500\t:smile::0.750 c\\[d]:0.250\tuncertain",
    ]


def test_train_reporter_draws_a_bar_per_epoch_and_prints_lines_above_it():
    from mnist_cli.record import EpochMetrics, StepRecord
    from mnist_cli.training.events import RunStarted, StepDone

    console, buf = terminal()
    metrics = EpochMetrics(
        epoch=1, train_loss=0.5, val_loss=0.4, val_accuracy=0.875, lr=0.001, seconds=1.5, samples_per_second=2000.0, best=True
    )
    with TrainReporter(console) as report:
        report(RunStarted("cpu", 1234, 600, 100, 200, 10, 2, "runs/[/]:smile:"))
        for step in (1, 5):
            report(StepDone(StepRecord(1, step, step, 0.75, 0.001), 10, 1000.0, None))
        report.progress.refresh()
        assert re.search(r"epoch 1/2 .* 5/10 loss 0\.7500 +1,000 samples/s", text_of(buf)), text_of(buf)
        report(metrics)
        assert report.progress.tasks == []
        # Without a validation split every epoch's model is kept, but none is "best"; one step is not "1 steps".
        report(RunStarted("cpu", 9, 4, 0, 4, 1, 2, "xor"))
        report(EpochMetrics(2, 0.25, None, None, 0.5, 0.1, 40.0, best=True))
    out = text_of(buf)
    started = "training on cpu: 600 train / 100 val / 200 test images, 1,234 parameters, 10 steps per epoch -> runs/[/]:smile:"
    assert started + "\n" in out
    assert "epoch 1/2  train_loss 0.5000  val_loss 0.4000  val_acc 87.50%  1.5s  2,000 samples/s  *best" in out
    assert "1 step per epoch -> xor" in out
    assert "epoch 2/2  train_loss 0.2500  no validation split  0.1s  40 samples/s\n" in out
