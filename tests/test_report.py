"""`mnist report` on synthetic runs: every figure written at its size and not blank, a self-contained report.html,
--json listing the files, the terminal output, one clear error for anything that is not a finished run, and the
tutorials' pictures (decision boundary and hidden units for 2 inputs, 8x8 tiles for digits)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import XOR, assert_clean_error, invoke, train_run, write_config
from matplotlib.figure import Figure
from PIL import Image

from mnist_cli.config import load_config
from mnist_cli.data.small import truth_table
from mnist_cli.inference.trained import load_trained
from mnist_cli.record import EpochMetrics, read_result
from mnist_cli.report import figures
from mnist_cli.report.boundary import dataset_figures, input_grid
from mnist_cli.training.loop import train

# Pixel sizes the figures are drawn at: figures.*_SIZE inches at figures.DPI.
SIZES = {
    "curves.png": (1200, 400),
    "health.png": (1200, 400),
    "confusion.png": (1100, 480),
    "weights.png": (800, 464),  # 32 units (the runs here are 32 wide): 4 rows of 8 tiles
    "mistakes.png": (1000, 640),
}
MIN_COLOURS = 20  # a blank or single-colour picture has 1-3


def assert_picture(data: bytes, size: tuple[int, int]) -> None:
    """A PNG of exactly `size` pixels that shows something (more than a few distinct colours)."""
    image = Image.open(BytesIO(data))
    assert image.format == "PNG" and image.size == size
    colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > MIN_COLOURS, f"{len(colours or [])} colours: blank?"


def test_report_of_a_checkpoint_in_a_run_writes_every_figure_and_a_self_contained_page(finished_run, tmp_path):
    r = invoke("report", finished_run / "last.pt", "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["checkpoint"] == str(finished_run / "last.pt")
    names = [Path(f).name for f in result["files"]]
    assert names == ["curves.png", "health.png", "confusion.png", "weights.png", "mistakes.png", "report.html", "report.md"]
    assert all(Path(f).parent == tmp_path for f in result["files"])
    for name in names[:5]:
        assert_picture((tmp_path / name).read_bytes(), SIZES[name])
    assert result["html"] == str(tmp_path / "report.html")
    assert (result["test_images"], result["test_accuracy"]) == (200, read_result(finished_run).test_accuracy)
    assert result["verdicts"] == []  # the synthetic bars are learnt cleanly: nothing to warn about
    page = (tmp_path / "report.html").read_text()
    for reference in ("http://", "https://", 'src="//', "url("):
        assert reference not in page
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert {base64.b64decode(e) for e in embedded} == {(tmp_path / name).read_bytes() for name in names[:5]}
    assert len(re.findall(r"<img ", page)) == len(embedded) == 5  # no other image, nothing fetched
    markdown = (tmp_path / "report.md").read_text()
    assert all(f"]({name})" in markdown for name in names[:5])


def test_report_defaults_to_the_run_folder_leaves_out_a_non_finite_step_and_shows_an_html_name_as_text(finished_run, tmp_path):
    run = Path(shutil.copytree(finished_run, tmp_path / "<img src=x onerror=alert(1)>"))
    rows = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    next(row for row in rows if row["kind"] == "step")["loss"] = None  # how a NaN/inf loss is recorded (on_nan: skip)
    (run / "events.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    r = invoke("report", run)
    assert r.exit_code == 0, r.output
    html = run / "report" / "report.html"
    assert r.stdout.splitlines()[-1] == f"report: {html}"
    assert f"{run}: test accuracy " in r.stdout
    assert f"wrote 5 figures, report.html and report.md to {run / 'report'}" in r.stdout
    assert_picture((run / "report" / "curves.png").read_bytes(), SIZES["curves.png"])
    markdown = (run / "report" / "report.md").read_text()
    assert "<img" not in markdown and "# mnist report: &lt;img src=x onerror=alert(1)&gt;" in markdown


def test_a_linear_model_shows_each_class_output_weights(tmp_path, synthetic_root):
    run = train_run(tmp_path / "linear", synthetic_root, model={"depth": 0}, train={"epochs": 1})
    r = invoke("report", run, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert_picture((tmp_path / "out" / "weights.png").read_bytes(), (800, 388))  # 2 rows of 5 class tiles


def test_figures_drawn_from_data_are_not_blank_and_say_what_they_show():
    rng = np.random.default_rng(0)
    x = [0.5, 1, 1.5, 2]
    hidden = [
        figures.LayerCurve(f"layer {i}", x, [1e-5 * 10**i, 2e-5, 3e-5, 1e-4], [0.1, 0.2, 0.3, 0.4], [None] * 4) for i in (1, 2)
    ]
    output = figures.LayerCurve("output", x, [1, 1, 1, 1], [None] * 4, [None] * 4)
    drawn = {
        "health.png": figures.layer_health(hidden, output),
        "weights.png": figures.weight_tiles(rng.normal(size=(32, 784)), "tiles"),
        "mistakes.png": figures.mistakes(rng.integers(0, 255, (3, 28, 28)), ["1", "2", "3"], ["7", "7", "8"], [0.9, 0.8, 0.7], 3),
    }
    for name, fig in drawn.items():
        assert_picture(figures.png_bytes(fig), SIZES[name])
    # Up to 64 tiles, 8 to a row; the figure is as tall as its rows.
    assert_picture(figures.png_bytes(figures.weight_tiles(rng.normal(size=(100, 784)), "tiles")), (800, 865))
    # The loss axis names its loss; an epoch's training mean sits mid-epoch.
    epochs = [EpochMetrics(e, 0.3, None, None, 1e-3, 1.0, 100.0, train_accuracy=0.5) for e in (1, 2)]
    loss_ax = figures.training_curves(epochs, loss_label="squared error").axes[0]
    assert loss_ax.get_ylabel() == "squared error"
    [mean] = [line for line in loss_ax.get_lines() if line.get_label() == "training, epoch mean"]
    assert list(mean.get_xdata()) == [0.5, 1.5]
    # Twelve layers, twelve looks, and every panel with a legend.
    hidden = [figures.LayerCurve(f"layer {i + 1}", [1, 2], [1.0, 0.5], [0.1, 0.2], [None, None]) for i in range(12)]
    grad_ax, dead_ax, _ = figures.layer_health(hidden).axes[:3]
    assert len({(line.get_color(), line.get_linestyle()) for line in grad_ax.get_lines()}) == 12
    assert [t.get_text() for t in dead_ax.get_legend().get_texts()] == [c.name for c in hidden]


NOT_A_RUN = {  # a path under the test's folder -> what the one error line says ({} is the path)
    "missing": "no such run folder or checkpoint: {}",
    "empty": "{} is empty: no run has written here yet",
    "other": "{} is not a run folder (no config.yaml, events.jsonl or last.pt in ",
    "other/notes.txt": "{} is neither a run folder nor a checkpoint (.pt)",
    "loose/model.pt": "{} is a checkpoint outside a run folder",
    "events-only": "{} holds events.jsonl but no config.yaml",
    "stopped": "{}: the run stopped before finishing its first epoch (events.jsonl holds no epochs); "
    "continue it with `mnist train --resume auto --out` that folder",
}


@pytest.mark.parametrize("command", ["report", "compare"])
@pytest.mark.parametrize("name", NOT_A_RUN)
def test_what_is_not_a_finished_run_is_one_error_line(tmp_path, finished_run, stopped_before_an_epoch, command, name):
    for folder in ("empty", "other", "loose", "events-only"):
        (tmp_path / folder).mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hello")
    shutil.copy(finished_run / "best.pt", tmp_path / "loose" / "model.pt")
    shutil.copy(finished_run / "events.jsonl", tmp_path / "events-only")
    path = stopped_before_an_epoch if name == "stopped" else tmp_path / name
    r = invoke(command, *([finished_run] if command == "compare" else []), path)
    assert_clean_error(r, NOT_A_RUN[name].format(path))


def test_verdicts_are_printed_with_their_evidence_and_suggestion_and_land_in_html_and_json(tmp_path, synthetic_root):
    run = train_run(tmp_path / "stuck", synthetic_root, train={"lr": 1e-7})  # too small a step to learn anything
    r = invoke("report", run)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    first = lines.index("warning: best validation accuracy 10.0% after 2 epoch(s), chance is 10%: the network is not learning")
    assert lines[first + 1] == "    evidence: best_accuracy 0.1, source validation, chance 0.1, epochs 2"
    assert lines[first + 2].startswith("    suggestion: ")
    page = (run / "report" / "report.html").read_text()
    assert "the network is not learning" in page and "evidence:" in page
    r = invoke("report", run, "--json")
    verdict = next(v for v in json.loads(r.stdout)["verdicts"] if v["code"] == "not_learning")
    assert verdict["evidence"] == {"best_accuracy": 0.1, "source": "validation", "chance": 0.1, "epochs": 2}
    assert verdict["severity"] == "warning" and verdict["suggestion"]


def test_report_never_writes_through_a_link_out_of_the_run_folder(finished_run, tmp_path):
    run, elsewhere = Path(shutil.copytree(finished_run, tmp_path / "copy")), tmp_path / "somedir"
    elsewhere.mkdir()
    (elsewhere / "boundary.png").write_bytes(b"mine")
    (elsewhere / "report.md").write_text("mine")
    (run / "report").symlink_to(elsewhere)
    assert_clean_error(invoke("report", run), f"{run / 'report'} is a link to {elsewhere}", "remove it, or give --out")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["boundary.png", "report.md"]
    assert (elsewhere / "report.md").read_text() == "mine"


def test_report_deletes_only_figures_an_earlier_report_wrote(finished_run, tmp_path):
    (tmp_path / "boundary.png").write_bytes(b"a user's file")
    (tmp_path / "hidden-units.png").write_bytes(b"an earlier report's")
    (tmp_path / "report.md").write_text("![x](hidden-units.png)\n")
    assert invoke("report", finished_run, "--out", tmp_path).exit_code == 0
    assert (tmp_path / "boundary.png").read_bytes() == b"a user's file"
    assert not (tmp_path / "hidden-units.png").exists()
    (tmp_path / "report.md").unlink()
    os.mkfifo(tmp_path / "report.md")  # someone else's run folder: a FIFO is named, never read (it would not end)
    assert invoke("report", finished_run, "--out", tmp_path).exit_code == 0


def test_a_full_disk_names_the_files_already_written(finished_run, tmp_path, monkeypatch):
    import errno

    from mnist_cli.disk import atomic_write
    from mnist_cli.report import build

    def full_at_html(path, write, **kw):
        def fail(f):
            raise OSError(errno.ENOSPC, "No space left on device")

        atomic_write(path, fail if path.name == "report.html" else write, **kw)

    monkeypatch.setattr(build, "atomic_write", full_at_html)
    r = invoke("report", finished_run, "--out", tmp_path)
    pngs = ", ".join(p.name for p in sorted(tmp_path.glob("*.png"), key=lambda p: p.stat().st_mtime_ns))
    assert_clean_error(r, "(No space left on device); report.html was not written; written before it: " + pngs)
    assert "curves.png" in pngs


# --- the tutorials' networks ---


def report_files(run) -> set[str]:
    r = invoke("report", run, "--json")
    assert r.exit_code == 0, r.output
    return {p.rsplit("/", 1)[-1] for p in json.loads(r.stdout)["files"]}


def test_the_grid_is_the_models_answer_over_the_input_square_and_report_draws_it_for_xor_and_tiles_for_digits(tmp_path):
    train(load_config(write_config(tmp_path / "x.yaml", **XOR), ["train.epochs=30"]), tmp_path / "xor")
    trained = load_trained(tmp_path / "xor" / "best.pt")
    grid = input_grid(trained.model, trained.normalization, resolution=5)
    assert grid.probability.shape == (5, 5) and [h.shape for h in grid.hidden] == [(3, 5, 5)]
    grid = input_grid(trained.model, trained.normalization, resolution=7)  # -0.25, 0, 0.25, ..., 1.25
    points = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    corners = [grid.probability[b, a] for a, b in ((1, 1), (1, 5), (5, 1), (5, 5))]  # (a,b) = (0,0), (0,1), (1,0), (1,1)
    assert np.allclose(corners, trained.model(points).softmax(1)[:, 1].detach().numpy(), atol=1e-6)
    figures = dataset_figures(trained, truth_table("xor"))
    assert set(figures) == {"boundary", "hidden-units"} and all(isinstance(f, Figure) for f in figures.values())

    files = report_files(tmp_path / "xor")
    assert {"boundary.png", "hidden-units.png", "curves.png", "health.png"} <= files
    assert not {"mistakes.png", "weights.png"} & files
    # What the captions say is true of a truth table: no validation split, no digits, health probed on the training set.
    page = (tmp_path / "xor" / "report" / "report.md").read_text()
    assert "validation images" not in page and "digit" not in page, page
    assert "taken from the training step" in page and "4 training examples (there is no validation split)" in page

    digits = train_run(
        tmp_path / "digits", tmp_path, data={"dataset": "digits", "val_size": 144}, train={"epochs": 2, "batch_size": 256}
    )
    files = report_files(digits)
    assert {"weights.png", "mistakes.png"} <= files and "boundary.png" not in files
