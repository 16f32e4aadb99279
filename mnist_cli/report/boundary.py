"""A 2-input network over its input square (what TensorFlow Playground shows): `input_grid` evaluates it, the
figure functions draw the decision boundary with the four points and what each hidden unit responds to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from mnist_cli.data.datasets import Normalization, Split
from mnist_cli.data.loader import to_inputs
from mnist_cli.evaluate import predict_split

if TYPE_CHECKING:
    from mnist_cli.inference.trained import TrainedModel

MARGIN = 0.25  # the square drawn runs from -MARGIN to 1 + MARGIN in each input, so the corners sit inside it
RESOLUTION = 121  # grid points per side
PROB_CMAP, UNIT_CMAP = "RdBu_r", "viridis"
PANEL = 2.6  # inches per hidden-unit panel
FLAT = 1e-3  # P(1) within 0.5 +- FLAT everywhere: no decision boundary to draw


@dataclass(frozen=True)
class InputGrid:
    """A model evaluated on a RESOLUTION x RESOLUTION grid over the input square (raw input units)."""

    axis: np.ndarray  # (R,) input values along each side
    probability: np.ndarray  # (R, R) P(class 1) at [row = input b, column = input a]
    hidden: list[np.ndarray]  # per hidden layer, (units, R, R) each unit's activation


@torch.inference_mode()
def input_grid(model: nn.Module, norm: Normalization, resolution: int = RESOLUTION) -> InputGrid:
    """Run a 2-input MLP (model.hidden[i], model.output) over the square; inputs are raw values, as the data holds."""
    model.eval()
    axis = np.linspace(-MARGIN, 1 + MARGIN, resolution, dtype=np.float32)
    a, b = np.meshgrid(axis, axis)  # a varies along columns, b along rows
    raw = torch.from_numpy(np.stack([a.ravel(), b.ravel()], axis=1)) * norm.scale
    device = next(model.parameters()).device
    x = to_inputs(raw.to(device), norm)
    hidden = []
    for layer in model.hidden:
        x = layer(x)
        hidden.append(x.T.reshape(-1, resolution, resolution).cpu().numpy())
    probability = torch.softmax(model.output(x), dim=1)[:, 1]
    return InputGrid(axis, probability.reshape(resolution, resolution).cpu().numpy(), hidden)


def decision_boundary(grid: InputGrid, points: Split, predictions: list[int], title: str) -> Figure:
    """P(class 1) over the input square, the 0.5 contour where the answer flips, and the points."""
    fig = Figure(figsize=(5.2, 4.4), layout="constrained")
    ax = fig.add_subplot()
    extent = (grid.axis[0], grid.axis[-1], grid.axis[0], grid.axis[-1])
    image = ax.imshow(grid.probability, origin="lower", extent=extent, cmap=PROB_CMAP, vmin=0, vmax=1)
    # A flat output (a depth-0 net stuck at 0.5 on XOR) has no boundary; a contour there would trace rounding noise.
    if grid.probability.min() < 0.5 - FLAT < 0.5 + FLAT < grid.probability.max():
        ax.contour(grid.axis, grid.axis, grid.probability, levels=[0.5], colors="black", linewidths=1.5)
    _draw_points(ax, points, predictions)
    fig.colorbar(image, ax=ax, label="P(output = 1)")
    ax.set(title=title, xlabel="input a", ylabel="input b", xlim=extent[:2], ylim=extent[2:])
    return fig


def hidden_units(grid: InputGrid, points: Split, title: str) -> Figure:
    """Each hidden unit's activation over the input square, one panel per unit, a row per hidden layer (at least one)."""
    rows, cols = len(grid.hidden), max(len(h) for h in grid.hidden)
    fig = Figure(figsize=(PANEL * cols + 0.6, PANEL * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    extent = (grid.axis[0], grid.axis[-1], grid.axis[0], grid.axis[-1])
    for r, layer in enumerate(grid.hidden):
        for c in range(cols):
            ax = axes[r][c]
            if c >= len(layer):
                ax.axis("off")
                continue
            image = ax.imshow(layer[c], origin="lower", extent=extent, cmap=UNIT_CMAP)
            _draw_points(ax, points, None, size=30)
            fig.colorbar(image, ax=ax, shrink=0.8)
            ax.set_title(f"layer {r + 1}, unit {c + 1}", fontsize=9)
            ax.set_xlabel("input a", fontsize=8)
            ax.set_ylabel("input b", fontsize=8)
    fig.suptitle(title)
    return fig


def _draw_points(ax, points: Split, predictions: list[int] | None, size: int = 90) -> None:
    """o: class 0, X: class 1; a red edge where the network answered wrong."""
    xy, labels = points.images.float().cpu().numpy(), points.labels.cpu().numpy()
    wrong = labels != np.asarray(predictions if predictions is not None else labels)
    for label, marker, color in ((0, "o", "white"), (1, "X", "black")):
        k = labels == label
        edges, widths = np.where(wrong[k], "red", "black"), np.where(wrong[k], 2.5, 1.0)
        ax.scatter(xy[k, 0], xy[k, 1], s=size, marker=marker, c=color, edgecolors=edges, linewidths=widths, zorder=3)


def dataset_figures(trained: TrainedModel, points: Split) -> dict[str, Figure]:
    """A truth-table model's decision boundary and (with hidden layers) its hidden units over the input square."""
    grid = input_grid(trained.model, trained.normalization)
    predictions = predict_split(trained.model, points.to(trained.device), trained.normalization).predictions.tolist()
    name = f"{trained.dataset.name}, {trained.architecture}"
    drawn = {"boundary": decision_boundary(grid, points, predictions, f"{name}: decision boundary")}
    if grid.hidden:
        drawn["hidden-units"] = hidden_units(grid, points, f"{name}: each hidden unit over the input square")
    return drawn
