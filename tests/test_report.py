"""`mnist report` on synthetic runs: every figure written at its size and not blank, a self-contained report.html,
--json listing the files, the terminal output, and one clear error for anything that is not a finished run."""

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
from conftest import assert_clean_error, invoke, write_config
from PIL import Image

from mnist_cli.errors import TrainingInterrupted
from mnist_cli.report import figures

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
    assert image.format == "PNG"
    assert image.size == size
    colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > MIN_COLOURS, f"{len(colours or [])} colours: blank?"


def train_run(folder: Path, root: Path, **sections) -> Path:
    """A small run on the synthetic data; returns its folder."""
    from mnist_cli.config import load_config
    from mnist_cli.training.loop import train

    folder.mkdir(parents=True, exist_ok=True)
    cfg = load_config(write_config(folder.parent / f"{folder.name}.yaml", data={"val_size": 100, "root": str(root)}, **sections))
    train(cfg, folder)
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic_root) -> Path:
    return train_run(tmp_path_factory.mktemp("report") / "run", synthetic_root)


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    """A copy of the run, for tests that write into the run folder or change it."""
    return Path(shutil.copytree(run_dir, tmp_path / "copy"))


def test_report_writes_every_figure_at_its_size_and_not_blank(run_dir, tmp_path):
    r = invoke("report", run_dir, "--out", tmp_path / "out", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    names = [Path(f).name for f in result["files"]]
    assert names == ["curves.png", "health.png", "confusion.png", "weights.png", "mistakes.png", "report.html", "report.md"]
    assert all(Path(f).parent == tmp_path / "out" for f in result["files"])
    for name in names:
        if name.endswith(".png"):
            assert_picture((tmp_path / "out" / name).read_bytes(), SIZES[name])
    assert result["html"] == str(tmp_path / "out" / "report.html")
    assert result["test_images"] == 200 and 0.9 <= result["test_accuracy"] <= 1.0
    assert result["verdicts"] == []  # the synthetic bars are learnt cleanly: nothing to warn about


def test_report_html_is_self_contained_and_embeds_every_figure(run_dir, tmp_path):
    r = invoke("report", run_dir, "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    page = (tmp_path / "report.html").read_text()
    for reference in ("http://", "https://", 'src="//', "url("):
        assert reference not in page
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(embedded) == len(pngs) >= 4
    assert {base64.b64decode(e) for e in embedded} == {p.read_bytes() for p in pngs}
    assert len(re.findall(r"<img ", page)) == len(pngs)  # no other image, nothing fetched
    markdown = (tmp_path / "report.md").read_text()
    for png in pngs:
        assert f"]({png.name})" in markdown


def test_report_defaults_to_the_run_folder_and_prints_where_report_html_is(run_copy):
    r = invoke("report", run_copy)
    assert r.exit_code == 0, r.output
    html = run_copy / "report" / "report.html"
    assert html.is_file()
    assert r.stdout.splitlines()[-1] == f"report: {html}"
    assert f"{run_copy}: test accuracy " in r.stdout
    assert f"wrote {len(list(html.parent.glob('*.png')))} figures, report.html and report.md to {run_copy / 'report'}" in r.stdout


def test_report_reads_a_checkpoint_inside_a_run(run_dir, tmp_path):
    r = invoke("report", run_dir / "last.pt", "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["checkpoint"] == str(run_dir / "last.pt")


def test_a_linear_model_shows_each_class_output_weights(tmp_path, synthetic_root):
    run = train_run(tmp_path / "linear", synthetic_root, model={"depth": 0})
    r = invoke("report", run, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert_picture((tmp_path / "out" / "weights.png").read_bytes(), (800, 388))  # 2 rows of 5 class tiles


def test_figures_are_not_blank_when_drawn_from_data():
    rng = np.random.default_rng(0)
    hidden = [
        figures.LayerCurve(f"layer {i}", [0.5, 1, 1.5, 2], [1e-5 * 10**i, 2e-5, 3e-5, 1e-4], [0.1, 0.2, 0.3, 0.4], [None] * 4)
        for i in (1, 2)
    ]
    drawn = {
        "health.png": figures.layer_health(
            hidden, figures.LayerCurve("output", [0.5, 1, 1.5, 2], [1, 1, 1, 1], [None] * 4, [None] * 4)
        ),
        "weights.png": figures.weight_tiles(rng.normal(size=(32, 784)), "tiles"),
        "mistakes.png": figures.mistakes(rng.integers(0, 255, (3, 28, 28)), ["1", "2", "3"], ["7", "7", "8"], [0.9, 0.8, 0.7], 3),
    }
    for name, fig in drawn.items():
        assert_picture(figures.png_bytes(fig), SIZES[name])
    # Up to 64 tiles, 8 to a row; the figure is as tall as its rows.
    assert_picture(figures.png_bytes(figures.weight_tiles(rng.normal(size=(100, 784)), "tiles")), (800, 865))


@pytest.mark.parametrize(("folder", "message"), [("nope", "nope"), ("notes", "not a run folder"), ("empty", "is empty")])
def test_report_on_what_is_not_a_run_is_one_error_line(tmp_path, folder, message):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    assert_clean_error(invoke("report", tmp_path / folder), message)


def stopped_run(folder: Path, root: Path) -> Path:
    """A run stopped at step 3 of its first epoch, as Ctrl-C stops one: config.yaml and last.pt, no finished epoch."""
    from mnist_cli.config import load_config
    from mnist_cli.training.loop import train

    cfg = load_config(write_config(folder.parent / "stopped.yaml", data={"val_size": 100, "root": str(root)}))
    calls = iter(range(1000))
    with pytest.raises(TrainingInterrupted):
        train(cfg, folder, should_stop=lambda: next(calls) >= 2)
    assert (folder / "last.pt").exists() and '"kind": "epoch"' not in (folder / "events.jsonl").read_text()
    return folder


def test_report_on_a_run_stopped_before_its_first_epoch_is_one_error_line(tmp_path, synthetic_root):
    assert_clean_error(invoke("report", stopped_run(tmp_path / "killed", synthetic_root)), "before finishing its first epoch")


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


def test_a_step_whose_loss_was_not_finite_is_left_out_of_the_curves(run_copy, tmp_path):
    events = run_copy / "events.jsonl"
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    next(row for row in rows if row["kind"] == "step")["loss"] = None  # how a NaN/inf loss is recorded (on_nan: skip)
    events.write_text("".join(json.dumps(row) + "\n" for row in rows))
    r = invoke("report", run_copy, "--out", tmp_path, "--json")
    assert r.exit_code == 0, r.output
    assert_picture((tmp_path / "curves.png").read_bytes(), SIZES["curves.png"])


def test_curves_say_which_loss_and_draw_an_epoch_mean_mid_epoch():
    from mnist_cli.record import EpochMetrics

    epochs = [EpochMetrics(e, 0.3, None, None, 1e-3, 1.0, 100.0, train_accuracy=0.5) for e in (1, 2)]
    loss_ax = figures.training_curves(epochs, loss_label="squared error").axes[0]
    assert loss_ax.get_ylabel() == "squared error"
    [mean] = [line for line in loss_ax.get_lines() if line.get_label() == "training, epoch mean"]
    assert list(mean.get_xdata()) == [0.5, 1.5]


def test_health_layers_each_look_different_and_every_panel_has_a_legend():
    from mnist_cli.report.figures import LayerCurve

    hidden = [LayerCurve(f"layer {i + 1}", [1, 2], [1.0, 0.5], [0.1, 0.2], [None, None]) for i in range(12)]
    grad_ax, dead_ax, _ = figures.layer_health(hidden).axes[:3]
    looks = {(line.get_color(), line.get_linestyle()) for line in grad_ax.get_lines()}
    assert len(looks) == 12
    assert [t.get_text() for t in dead_ax.get_legend().get_texts()] == [c.name for c in hidden]


def test_report_never_writes_through_a_link_out_of_the_run_folder(run_copy, tmp_path):
    elsewhere = tmp_path / "somedir"
    elsewhere.mkdir()
    (elsewhere / "boundary.png").write_bytes(b"mine")
    (elsewhere / "report.md").write_text("mine")
    (run_copy / "report").symlink_to(elsewhere)
    r = invoke("report", run_copy)
    assert_clean_error(r, f"{run_copy / 'report'} is a link to {elsewhere}", "remove it, or give --out")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["boundary.png", "report.md"]
    assert (elsewhere / "report.md").read_text() == "mine"


def test_report_deletes_only_figures_an_earlier_report_wrote(run_dir, tmp_path):
    (tmp_path / "boundary.png").write_bytes(b"a user's file")
    (tmp_path / "hidden-units.png").write_bytes(b"an earlier report's")
    (tmp_path / "report.md").write_text("![x](hidden-units.png)\n")
    assert invoke("report", run_dir, "--out", tmp_path).exit_code == 0
    assert (tmp_path / "boundary.png").read_bytes() == b"a user's file"
    assert not (tmp_path / "hidden-units.png").exists()
    (tmp_path / "report.md").unlink()
    os.mkfifo(tmp_path / "report.md")  # someone else's run folder: a FIFO is named, never read (it would not end)
    assert invoke("report", run_dir, "--out", tmp_path).exit_code == 0


def test_report_md_shows_an_html_run_name_as_text(run_dir, tmp_path):
    run = Path(shutil.copytree(run_dir, tmp_path / "<img src=x onerror=alert(1)>"))
    assert invoke("report", run).exit_code == 0
    markdown = (run / "report" / "report.md").read_text()
    assert "<img" not in markdown and "# mnist report: &lt;img src=x onerror=alert(1)&gt;" in markdown


def test_a_full_disk_names_the_files_already_written(run_dir, tmp_path, monkeypatch):
    import errno

    from mnist_cli.disk import atomic_write
    from mnist_cli.report import build

    def full_at_html(path, write, **kw):
        def fail(f):
            raise OSError(errno.ENOSPC, "No space left on device")

        atomic_write(path, fail if path.name == "report.html" else write, **kw)

    monkeypatch.setattr(build, "atomic_write", full_at_html)
    r = invoke("report", run_dir, "--out", tmp_path)
    pngs = ", ".join(p.name for p in sorted(tmp_path.glob("*.png"), key=lambda p: p.stat().st_mtime_ns))
    assert_clean_error(r, "(No space left on device); report.html was not written; written before it: " + pngs)
    assert "curves.png" in pngs
