"""One function per picture: data in, a matplotlib `Figure` out (never pyplot's global state); `png_bytes` gives
its file. Sizes are fixed inches at `DPI`, so `CURVES_SIZE` is a 1200x400 PNG."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from PIL import Image

from mnist_cli.record import EpochMetrics

DPI = 100
CURVES_SIZE = (12.0, 4.0)  # inches: loss, accuracy and learning rate side by side
CONFUSION_SIZE = (11.0, 4.8)
WEIGHTS_WIDTH = 8.0  # inches; the height follows from the number of tile rows (64 tiles: 8.65)
TILE_MARGIN, TILE_TITLE = 0.08, 0.55  # inches around the tiles, and above them for the title
MISTAKES_SIZE = (10.0, 6.4)  # 4 rows of 8 digits with a two-line caption each
HEALTH_SIZE = (12.0, 4.0)
COMPARE_SIZE = (11.0, 4.2)
CROSS_ENTROPY = "cross-entropy (nats per image)"

MAX_TILES = 64  # first-layer units shown; more tiles get too small to read at this size
MAX_MISTAKES = 32
SIDE = 28  # MNIST images are 28x28
WEIGHT_CMAP = "RdBu_r"  # diverging: red pulls a unit up, blue pushes it down, white is 0
TILE_GAP = 6  # pixels of the 28x28 grid between weight tiles (room for a label)
MISTAKE_GAP = 14  # between mistaken digits: room for a two-line caption


@dataclass(frozen=True)
class Series:
    """A curve: x (epochs, fractional within an epoch) against y."""

    x: Sequence[float]
    y: Sequence[float]


@dataclass(frozen=True)
class LayerCurve:
    """One hidden layer's health over training; None where a quantity does not apply (dead units of a sigmoid)."""

    name: str  # "layer 1"
    x: Sequence[float]  # epochs, fractional
    grad_norm: Sequence[float | None]  # L2 norm of the weight gradient; None where the step was skipped
    dead: Sequence[float | None]  # fraction of units that never activate on the probe batch
    saturated: Sequence[float | None]  # fraction of units sitting at a flat end of sigmoid/tanh


def new_figure(size: tuple[float, float], layout: str | None = "constrained") -> Figure:
    """A Figure drawn by Agg, independent of any pyplot state or display."""
    fig = Figure(figsize=size, dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """`fig` as PNG bytes at its own size (no tight bbox, so exactly inches x DPI pixels); the figure is then cleared."""
    rendered = io.BytesIO()
    try:
        fig.savefig(rendered, format="png", dpi=DPI)
    finally:
        fig.clear()
    # 256 colours are plenty for a plot and make the file (and the HTML that embeds it) 2-4x smaller; the re-encode
    # also drops matplotlib's 'Software' tag, so the file names no version and no web address.
    with Image.open(rendered) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="png", optimize=True)
    return out.getvalue()


def training_curves(
    epochs: Sequence[EpochMetrics], step_loss: Series | None = None, lr: Series | None = None, loss_label: str = CROSS_ENTROPY
) -> Figure:
    """Loss (training per step and per epoch, validation per epoch), accuracy per epoch and the learning rate; an
    epoch's training mean is drawn mid-epoch, the span it averages, validation at its end, where it is taken."""
    fig = new_figure(CURVES_SIZE)
    loss_ax, acc_ax, lr_ax = fig.subplots(1, 3)
    x = [m.epoch for m in epochs]
    mid = [e - 0.5 for e in x]
    if step_loss is not None and len(step_loss.x):
        loss_ax.plot(step_loss.x, step_loss.y, color="tab:blue", alpha=0.35, linewidth=0.8, label="training, per step")
    loss_ax.plot(mid, [m.train_loss for m in epochs], "o-", color="tab:blue", label="training, epoch mean")
    _plot_present(loss_ax, x, [m.val_loss for m in epochs], "s-", color="tab:orange", label="validation")
    loss_ax.set(title="Loss", xlabel="epoch", ylabel=loss_label)

    _plot_present(acc_ax, mid, _percent([m.train_accuracy for m in epochs]), "o-", color="tab:blue", label="training")
    _plot_present(acc_ax, x, _percent([m.val_accuracy for m in epochs]), "s-", color="tab:orange", label="validation")
    acc_ax.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")

    if lr is not None and len(lr.x):
        lr_ax.plot(lr.x, lr.y, color="tab:green")
    else:
        lr_ax.plot(x, [m.lr for m in epochs], "o-", color="tab:green")
    lr_ax.set(title="Learning-rate schedule", xlabel="epoch", ylabel="learning rate")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    _finish(loss_ax, acc_ax)
    _finish(lr_ax, legend=None)
    return fig


def confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], what: str = "test images") -> Figure:
    """The confusion matrix as a heatmap (log colour scale, so a handful of mistakes shows) and per-class accuracy."""
    counts = np.asarray(matrix, dtype=np.int64)
    fig = new_figure(CONFUSION_SIZE)
    heat_ax, bar_ax = fig.subplots(1, 2, width_ratios=[1.15, 1])
    image = heat_ax.imshow(counts + 1, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(2, counts.max() + 1)))
    n = len(classes)
    heat_ax.set_xticks(range(n), classes, fontsize="small")
    heat_ax.set_yticks(range(n), classes, fontsize="small")
    heat_ax.set(title=f"Confusion matrix ({what})", xlabel="predicted class", ylabel="true class")
    if n <= 12:  # numbers stay legible up to about a dozen classes
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    bright = counts[i, j] + 1 > np.sqrt(counts.max() + 1)
                    heat_ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color="k" if bright else "w")
    fig.colorbar(image, ax=heat_ax, label="images + 1 (log scale)", shrink=0.85)

    totals = counts.sum(1).clip(min=1)
    per_class = 100 * counts.diagonal() / totals
    overall = 100 * counts.diagonal().sum() / max(counts.sum(), 1)
    bars = bar_ax.barh(range(n), per_class, color="tab:blue")
    bar_ax.bar_label(bars, [f"{v:.1f}" for v in per_class], padding=2, fontsize=7)
    bar_ax.axvline(overall, color="tab:red", linestyle="--", linewidth=1)
    bar_ax.set_yticks(range(n), classes, fontsize="small")
    bar_ax.invert_yaxis()
    low = min(per_class.min(), overall) if n else 0
    bar_ax.set_xlim(max(0.0, low - (100 - low) * 0.6 - 0.5), 100)
    bar_ax.set(title=f"Per-class accuracy (dashed: all classes, {overall:.2f}%)", xlabel="accuracy (%)", ylabel="true class")
    bar_ax.grid(axis="x", alpha=0.3)
    return fig


def weight_tiles(weights: np.ndarray, title: str, labels: Sequence[str] | None = None, side: int = SIDE) -> Figure:
    """Rows of `weights` (units, side * side) as tiles, each on a diverging scale centred on 0 (up to MAX_TILES), as
    one image (a mosaic) rather than an axes per tile: the same picture, drawn ~10x faster."""
    weights = np.asarray(weights, dtype=np.float32)[:MAX_TILES].reshape(-1, side, side)
    n = len(weights)
    cols = min(8, n) if n > 10 else min(5, n)
    rows = -(-n // cols)
    # Each tile on its own scale, -1..1: the pattern a unit looks for matters here, not its size.
    limits = np.abs(weights).max(axis=(1, 2), keepdims=True)
    mosaic = _mosaic(weights / np.where(limits > 0, limits, 1.0), rows, cols, TILE_GAP, TILE_GAP)
    # As tall as the tiles need: the mosaic's own aspect over the figure's width, plus the title.
    width = WEIGHTS_WIDTH - 2 * TILE_MARGIN
    height = round((width * mosaic.shape[0] / mosaic.shape[1] + TILE_MARGIN + TILE_TITLE) * DPI) / DPI
    fig = new_figure((WEIGHTS_WIDTH, height), layout=None)
    fig.suptitle(title, y=1 - 0.1 / height, va="top")
    ax = fig.add_axes(
        (TILE_MARGIN / WEIGHTS_WIDTH, TILE_MARGIN / height, width / WEIGHTS_WIDTH, 1 - (TILE_MARGIN + TILE_TITLE) / height)
    )
    ax.set_axis_off()
    cmap = colormaps[WEIGHT_CMAP].with_extremes(bad="#d0d0d0")  # the gaps between tiles
    ax.imshow(mosaic, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    for i in range(n):
        r, c = divmod(i, cols)
        label = labels[i] if labels is not None else f"unit {i + 1}"
        ax.text(
            c * (side + TILE_GAP) + side / 2, r * (side + TILE_GAP) + TILE_GAP - 1, label, ha="center", va="bottom", fontsize=7
        )
    return fig


def mistakes(
    images: np.ndarray, true: Sequence[str], predicted: Sequence[str], confidence: Sequence[float], total: int
) -> Figure:
    """The given wrong test digits (most confident first), each captioned with its true label, prediction and confidence."""
    images = np.asarray(images, dtype=np.float32)[:MAX_MISTAKES]
    shown = len(images)
    fig = new_figure(MISTAKES_SIZE, layout=None)
    fig.suptitle(f"Test digits it gets wrong: the {shown} most confident of {total:,} mistakes")
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.9))
    ax.set_axis_off()
    cmap = colormaps["gray_r"].with_extremes(bad="white")
    ax.imshow(_mosaic(images, 4, 8, MISTAKE_GAP // 2, MISTAKE_GAP), cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
    for i in range(shown):
        r, c = divmod(i, 8)
        x, y = c * (SIDE + MISTAKE_GAP // 2) + SIDE / 2, r * (SIDE + MISTAKE_GAP) + MISTAKE_GAP - 1
        caption = f"true {true[i]}, said {predicted[i]}\n{confidence[i]:.0%} sure"
        ax.text(x, y, caption, ha="center", va="bottom", fontsize=8)
    if not shown:
        ax.text(0.5, 0.5, "no mistakes on the test set", ha="center", va="center", fontsize=14, transform=ax.transAxes)
    return fig


def _mosaic(tiles: np.ndarray, rows: int, cols: int, gap: int, top: int) -> np.ndarray:
    """(n, side, side) tiles row by row in a (rows, cols) grid: `gap` NaN pixels between columns, `top` above each row."""
    side = tiles.shape[-1]
    height, width = top + side, side + gap
    grid = np.full((rows * height, cols * width - gap), np.nan)
    for i, tile in enumerate(tiles[: rows * cols]):
        r, c = divmod(i, cols)
        grid[r * height + top : (r + 1) * height, c * width : c * width + side] = tile
    return grid


def layer_health(hidden: Sequence[LayerCurve], output: LayerCurve | None = None) -> Figure:
    """Gradient norm per layer (log scale; the output layer dashed, for reference), dead and saturated units, over training."""
    fig = new_figure(HEALTH_SIZE)
    grad_ax, dead_ax, sat_ax = fig.subplots(1, 3)
    for i, layer in enumerate(hidden):
        # A qualitative palette, and a new line style for each ten layers: no two layers share a look.
        style = {"color": colormaps["tab10"](i % 10), "linestyle": ("-", ":", "-.")[i // 10 % 3], "label": layer.name}
        _plot_present(grad_ax, layer.x, layer.grad_norm, **style)
        _plot_present(dead_ax, layer.x, _percent(layer.dead), **style)
        _plot_present(sat_ax, layer.x, _percent(layer.saturated), **style)
    if output is not None:
        _plot_present(grad_ax, output.x, output.grad_norm, "--", color="k", label=output.name)
    if grad_ax.has_data():
        grad_ax.set_yscale("log")
    grad_ax.set(title="Weight-gradient norm per layer", xlabel="epoch", ylabel="L2 norm of dLoss/dW (log scale)")
    dead_ax.set(title="Dead units (never active)", xlabel="epoch", ylabel="units (%)")
    sat_ax.set(title="Saturated units (flat ends)", xlabel="epoch", ylabel="units (%)")
    for ax in (dead_ax, sat_ax):
        ax.set_ylim(-2, 102)
        if not ax.has_data():
            ax.text(0.5, 0.5, "not measured for\nthis activation", ha="center", va="center", transform=ax.transAxes)
    _finish(grad_ax, dead_ax, sat_ax, legend="x-small", ncol=2 if len(hidden) > 4 else 1)
    return fig


def comparison(runs: Sequence[tuple[str, Sequence[EpochMetrics]]], step_losses: Sequence[Series | None]) -> Figure:
    """Validation accuracy and training loss of several runs overlaid, one colour per run."""
    fig = new_figure(COMPARE_SIZE)
    acc_ax, loss_ax = fig.subplots(1, 2)
    for i, ((name, epochs), step) in enumerate(zip(runs, step_losses, strict=True)):
        color = colormaps["tab10"](i % 10)
        x = [m.epoch for m in epochs]
        _plot_present(acc_ax, x, _percent([m.val_accuracy for m in epochs]), "o-", color=color, label=name)
        if step is not None and len(step.x):
            loss_ax.plot(step.x, step.y, color=color, alpha=0.3, linewidth=0.8)
        loss_ax.plot([e - 0.5 for e in x], [m.train_loss for m in epochs], "o-", color=color, label=name)
    acc_ax.set(title="Validation accuracy", xlabel="epoch", ylabel="accuracy (%)")
    loss_ax.set(title="Training loss (faint: per step)", xlabel="epoch", ylabel=CROSS_ENTROPY)
    _finish(acc_ax, loss_ax)
    return fig


def _finish(*axes, legend: str | None = "small", ncol: int = 1) -> None:
    """Epochs from 0, a light grid, and a legend on each axes that has something drawn (unless `legend` is None)."""
    for ax in axes:
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        if legend and ax.has_data():
            ax.legend(fontsize=legend, ncol=ncol)


def _plot_present(ax, x: Sequence[float], y: Sequence[float | None], *style: str, **kw) -> None:
    """Plot only the points that have a value (validation can be off; dead units mean nothing for sigmoid)."""
    points = [(a, b) for a, b in zip(x, y, strict=True) if b is not None]
    if points:
        ax.plot(*zip(*points, strict=True), *style, **kw)


def _percent(values: Sequence[float | None]) -> list[float | None]:
    return [None if v is None else 100 * v for v in values]
