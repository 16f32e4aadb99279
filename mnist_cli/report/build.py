"""`mnist report`: a run's figures as PNGs, one self-contained report.html and a short report.md, plus its verdicts."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from mnist_cli.config import recorded_data_root
from mnist_cli.data.datasets import Split, load_split
from mnist_cli.data.small import truth_table
from mnist_cli.disk import atomic_write, unreadable_file
from mnist_cli.errors import CheckpointError, MnistError, SaveError
from mnist_cli.evaluate import Evaluation, ImagePredictions, predict_split, summarize
from mnist_cli.inference.trained import TrainedModel, load_trained
from mnist_cli.report import boundary, figures, pages, series
from mnist_cli.report.run import RunRecord, load_run
from mnist_cli.report.verdicts import Verdict, verdicts

REPORT_FOLDER = "report"  # default output: <run dir>/report/
HTML, MARKDOWN = "report.html", "report.md"


@dataclass(frozen=True)
class Report:
    """What `mnist report` wrote and concluded."""

    run_dir: Path
    checkpoint: Path
    out_dir: Path
    html: Path
    files: list[Path]  # every file written: the PNGs, report.html, report.md
    verdicts: list[Verdict]  # warnings first
    test_accuracy: float
    test_images: int
    mistakes: int

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types: paths as strings."""
        return json.loads(json.dumps(asdict(self), default=str))


def build_report(path: Path | str, out: Path | None = None, root: Path | None = None) -> Report:
    """Read the run (a folder, or a checkpoint inside one), run its model over the test set, write the report."""
    run = load_run(path)
    if run.checkpoint is None:
        raise CheckpointError(f"{run.run_dir}: no best.pt or last.pt to read the weights from")
    trained = load_trained(run.checkpoint, "cpu")
    test, predictions, evaluation, wrong = test_answers(trained, root)
    out_dir = _out_dir(run, out)
    earlier, written, pictures = _earlier_figures(out_dir), [], []

    def write(name: str, data: bytes) -> None:
        try:
            atomic_write(out_dir / name, lambda f: f.write(data))
        except MnistError as e:
            done = f"; written before it: {', '.join(p.name for p in written)}" if written else ""
            raise SaveError(f"{e}{done}") from None
        written.append(out_dir / name)

    for key, figure in _figures(run, trained, evaluation, test.images, predictions, wrong).items():
        file, title, _ = FIGURE_TEXT[key]
        write(file, data := figures.png_bytes(figure))
        pictures.append(pages.Picture(file, title, _caption(key, run, trained), data))
    for stale in earlier - {p.file for p in pictures}:  # a figure the last report drew that this run has no data for
        (out_dir / stale).unlink(missing_ok=True)
    found = verdicts(run)
    facts = _facts(run, trained, evaluation, len(wrong))
    title = f"mnist report: {run.name}"
    write(HTML, pages.html_page(title, facts, found, pictures).encode())
    write(MARKDOWN, pages.markdown_page(title, facts, found, pictures).encode())
    return Report(
        run_dir=run.run_dir.path,
        checkpoint=run.checkpoint,
        out_dir=out_dir,
        html=out_dir / HTML,
        files=written,
        verdicts=found,
        test_accuracy=evaluation.accuracy,
        test_images=evaluation.n,
        mistakes=len(wrong),
    )


def test_answers(trained: TrainedModel, root: Path | None = None) -> tuple[Split, ImagePredictions, Evaluation, torch.Tensor]:
    """The test set, every image's answer, their summary, and the indices of the mistakes, most confident first."""
    d = trained.config.data
    root = root or recorded_data_root(d)
    test = load_split(d.dataset, root, "test", d.val_size, trained.config.seed, d.test_root, d.skip_bad_files)
    # The test set's accuracy is in the event log, but the confusion matrix and the mistakes need every image's answer.
    predictions = predict_split(trained.model, test, trained.normalization)
    wrong = (predictions.predictions != predictions.labels).nonzero().flatten()
    wrong = wrong[predictions.confidence[wrong].argsort(descending=True)]
    return test, predictions, summarize(predictions, len(trained.classes)), wrong


def _out_dir(run: RunRecord, out: Path | None) -> Path:
    """--out as given, else <run>/report/, which must be a folder in the run folder, not a link to somewhere else."""
    if out is not None:
        return Path(out)
    out_dir = run.run_dir.path / REPORT_FOLDER
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        what = f"a link to {os.readlink(out_dir)}" if out_dir.is_symlink() else "not a folder"
        raise SaveError(f"{out_dir} is {what}; the report writes only inside the run folder: remove it, or give --out")
    return out_dir


def _earlier_figures(out_dir: Path) -> set[str]:
    """The figures an earlier report wrote here, as its report.md links them: the only files ever deleted."""
    path = out_dir / MARKDOWN
    if unreadable_file(path):  # none, or not a regular file (a FIFO would never end)
        return set()
    with open(path, "rb") as f:
        text = f.read(1 << 20).decode("utf-8", errors="replace")
    known = {file for file, *_ in FIGURE_TEXT.values()}
    return {name for name in re.findall(r"\]\(([^)]+\.png)\)$", text, re.M) if name in known}


# figure key -> (file, title, what to look for)
FIGURE_TEXT = {
    "curves": (
        "curves.png",
        "Loss, accuracy and learning rate",
        "Training loss per step (faint) and per epoch, validation per epoch. Validation loss rising while training loss "
        "falls is overfitting; a flat training loss from the start means the network is not learning.",
    ),
    "health": (
        "health.png",
        "Layer health while training",
        "The size of each layer's weight gradient on a log scale, taken from the training step at each probe. Layers "
        "near the input far below the output layer (dashed) barely learn: vanishing gradients. Dead units never "
        "activate (ReLU family); saturated units sit at a flat end of sigmoid or tanh, where the gradient is almost 0; "
        "both are counted on {probe}.",
    ),
    "confusion": (
        "confusion.png",
        "Confusion matrix and per-class accuracy",
        "Rows are the true classes, columns what the model said; everything off the diagonal is a mistake (log colour "
        "scale, so a handful shows). The bars show which classes are hardest.",
    ),
    "table-confusion": (
        "confusion.png",
        "Right and wrong answers on the four points",
        "Rows are each point's target output, columns what the network answered; off the diagonal is a wrong answer.",
    ),
    "weights": (
        "weights.png",
        "What the first layer looks for",
        "Each tile is one unit's {inputs} input weights laid out as the {side}x{side} image: red pixels push the unit up, "
        "blue push it down, white is 0 (each tile on its own scale). Units that learned strokes and edges show smooth "
        "blobs; tiles that still look like noise barely moved from their random start.",
    ),
    "boundary": (
        "boundary.png",
        "Decision boundary over the input square",
        "The network's probability of output 1 everywhere in the square around the four points (o: target 0, x: target "
        "1, red edge: answered wrong); the black line is where its answer flips. One line cannot separate XOR's points: "
        "a network that solves it draws a band or two regions.",
    ),
    "hidden-units": (
        "hidden-units.png",
        "What each hidden unit responds to",
        "Each hidden unit's activation over the same square. Each unit of the first layer is a soft line across it; "
        "the output combines them into the boundary above.",
    ),
    "mistakes": (
        "mistakes.png",
        "Test digits it gets wrong",
        "The most confident mistakes first. Some are digits a person would also misread; confident mistakes on clear "
        "digits show what the model has not learned.",
    ),
}


def _figures(run: RunRecord, trained: TrainedModel, evaluation: Evaluation, images, predictions, wrong) -> dict[str, Figure]:
    """Every figure this run has data for, by its FIGURE_TEXT key, in the report's order."""
    classes, model, info = trained.classes, trained.model, trained.dataset
    loss, lr = series.over_steps(run, "loss"), series.over_steps(run, "lr")
    drawn = {"curves": figures.training_curves(run.metrics, loss, lr, _loss_label(trained.config))}
    hidden, output = series.layer_curves(run.health)
    if hidden:
        drawn["health"] = figures.layer_health(hidden, output)
    if info.kind == "table":  # four points: the picture is the input square, not images
        drawn |= boundary.dataset_figures(trained, truth_table(info.name))
        drawn["table-confusion"] = figures.confusion(evaluation.confusion, classes, "the four points")
        return drawn
    side = info.image_side
    if len(model.hidden):
        weights = model.hidden[0].linear.weight.detach().cpu().numpy()
        shown = min(len(weights), figures.MAX_TILES)
        tiles_title = f"First hidden layer: units 1-{shown} of {len(weights)} as {side}x{side} input weights (red +, blue -)"
        tile_labels = [f"unit {i + 1}" for i in range(shown)]
    else:
        weights = model.output.weight.detach().cpu().numpy()
        tiles_title = f"No hidden layer: each class's output weights as a {side}x{side} image (red +, blue -)"
        tile_labels = [f"class {c}" for c in classes]
    idx = wrong[: figures.MAX_MISTAKES]
    pictures = np.asarray(images[idx].cpu())
    if side != figures.SIDE:  # 8x8 digits: mistakes enlarged into the 28x28 cells
        pictures = _enlarged(pictures, side, trained.normalization.scale)
    drawn["confusion"] = figures.confusion(evaluation.confusion, classes)
    drawn["weights"] = figures.weight_tiles(weights, tiles_title, tile_labels, side)
    true, said = ([classes[i] for i in t[idx].tolist()] for t in (predictions.labels, predictions.predictions))
    drawn["mistakes"] = figures.mistakes(pictures, true, said, predictions.confidence[idx].tolist(), len(wrong))
    return drawn


def _caption(key: str, run: RunRecord, trained: TrainedModel) -> str:
    """FIGURE_TEXT's caption of `key`, filled in for this run."""
    cfg, info = trained.config, trained.dataset
    source = "validation images" if cfg.data.val_size else "training examples (there is no validation split)"
    probe = f"a fixed batch of {run.health[0].probe_images} {source}" if run.health else ""
    caption = FIGURE_TEXT[key][2].format(probe=probe, side=info.image_side, inputs=info.in_features)
    if key == "curves" and cfg.train.label_smoothing:
        caption += f" The training loss includes label smoothing ({cfg.train.label_smoothing}), so it stays higher."
    return caption


def _loss_label(cfg) -> str:
    if cfg.train.loss == "mse":
        return "training: squared error of the probabilities" + ("; validation: cross-entropy" if cfg.data.val_size else "")
    return figures.CROSS_ENTROPY


def _enlarged(images: np.ndarray, side: int, scale: float) -> np.ndarray:
    """(n, side, side) raw values 0..scale -> (n, SIDE, SIDE) 0..255: each pixel a block, centred, for display."""
    factor = figures.SIDE // side
    big = np.kron(images.astype(np.float32) * (255 / scale), np.ones((factor, factor), dtype=np.float32))
    pad = (figures.SIDE - side * factor) // 2
    rest = figures.SIDE - side * factor - pad
    return np.pad(big, ((0, 0), (pad, rest), (pad, rest)))


def _facts(run: RunRecord, trained: TrainedModel, evaluation: Evaluation, mistakes: int) -> list[tuple[str, str]]:
    """The run in a few (label, value) rows: what was trained, how long, how well."""
    m = trained.config.model
    vals = [(e.epoch, e.val_accuracy) for e in run.metrics if e.val_accuracy is not None]
    best = max(vals, key=lambda v: v[1]) if vals else None
    seconds = sum(e.seconds for e in run.metrics)
    rows = [
        ("run folder", str(run.run_dir.path)),
        ("checkpoint", f"{run.checkpoint} (epoch {trained.epoch})"),
        ("model", f"{trained.architecture}, {m.activation}, init {m.init}, norm {m.norm}, dropout {m.dropout}"),
        ("parameters", f"{trained.parameters:,}"),
        ("training", f"{run.epochs_done} of {trained.config.train.epochs} epochs in {seconds:.1f} s"),
        ("best validation accuracy", f"{best[1]:.2%} (epoch {best[0]})" if best else "no validation split"),
        (
            "test accuracy",
            f"{evaluation.accuracy:.2%} on {evaluation.n:,} images ({mistakes:,} wrong), loss {evaluation.loss:.4f}",
        ),
    ]
    if not run.health:
        rows.append(("layer health", "not recorded in this run (train.health: false, or an older run)"))
    return rows
