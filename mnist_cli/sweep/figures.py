"""A sweep's pictures as matplotlib Figures (never pyplot's global state), and `draw`, which saves them as PNGs."""

from __future__ import annotations

import itertools
import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_cli.disk import atomic_write
from mnist_cli.naming import value_text
from mnist_cli.sweep.results import Cell
from mnist_cli.sweep.run import RunRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure


HEATMAP, SCATTER = "heatmap.png", "accuracy-vs-parameters.png"


def draw(out: Path, keys: list[str], runs: list[RunRow], cells: list[Cell]) -> list[str]:
    """heatmap.png and accuracy-vs-parameters.png in `out`, when there is a swept key and a finished run to show."""
    if not keys or not any(r.status == "done" for r in runs):
        return []
    for name, fig in ((HEATMAP, heatmap(runs, keys)), (SCATTER, accuracy_vs_parameters(cells, keys))):
        atomic_write(out / name, lambda f, fig=fig: fig.savefig(f, format="png", dpi=110))
    return [str(out / HEATMAP), str(out / SCATTER)]


def heatmap(runs: list[RunRow], keys: list[str]) -> Figure:
    """Mean ± std of the test accuracy over the first two swept keys; with more, a square pools the others' runs."""
    from matplotlib.figure import Figure

    values = [list({value_text(r.params[k]): None for r in runs}) for k in keys[:2]]  # in grid order
    rows, cols = values[0], (values[1] if len(keys) > 1 else [""])
    accs: dict[tuple[str, str], list[float]] = {}  # (row, column) -> its finished runs' test accuracies, in %
    for x in runs:
        if x.status == "done" and x.test_accuracy is not None:
            at = (value_text(x.params[keys[0]]), value_text(x.params[keys[1]]) if len(keys) > 1 else "")
            accs.setdefault(at, []).append(x.test_accuracy * 100)
    means = {at: statistics.fmean(a) for at, a in accs.items()}
    fig = Figure(figsize=(1.4 * len(cols) + 2.2, 0.9 * len(rows) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow([[means.get((r, c), math.nan) for c in cols] for r in rows], cmap="viridis", aspect="auto")
    middle = (max(means.values()) + min(means.values())) / 2 if means else 0
    for (i, r), (j, c) in itertools.product(enumerate(rows), enumerate(cols)):
        a = accs.get((r, c), [])
        std = f"± {statistics.stdev(a):.2f}" if len(a) > 1 else ("n=1" if a else "no run")
        label, dark = (f"{means[r, c]:.2f}\n{std}", means[r, c] < middle) if a else (std, False)
        ax.text(j, i, label, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylabel(keys[0])
    ax.set_xticks(range(len(cols)), cols) if len(keys) > 1 else ax.set_xticks([])
    ax.set_xlabel(keys[1] if len(keys) > 1 else "")
    pooled = f"; pooled over {', '.join(keys[2:])}" if len(keys) > 2 else ""
    ax.set_title(f"test accuracy (%), mean ± std over seeds{pooled}", fontsize=9)
    fig.colorbar(image, ax=ax, label="mean test accuracy (%)")
    return fig


def accuracy_vs_parameters(cells: list[Cell], keys: list[str]) -> Figure:
    """Mean test accuracy per cell against its parameters (log scale), error bars one std; a series per first-key value."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    series: dict[str, list[Cell]] = {}
    for c in cells:
        if c.test_accuracy_mean is not None and c.parameters:
            series.setdefault(value_text(c.params[keys[0]]) if keys else "runs", []).append(c)
    for name, group in series.items():
        group = sorted(group, key=lambda c: c.parameters or 0)
        ax.errorbar(
            [c.parameters for c in group],
            [c.test_accuracy_mean * 100 for c in group],
            yerr=[(c.test_accuracy_std or 0) * 100 for c in group],
            marker="o",
            capsize=3,
            label=f"{keys[0]}={name}" if keys else name,
        )
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter, NullLocator

    # Each model size its own labelled tick: log-scale decades alone leave sizes such as 12,730 and 50,890 unlabelled.
    sizes = sorted({c.parameters for group in series.values() for c in group})
    if 0 < len(sizes) <= 8:
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(sizes, [f"{p / 1000:,.1f}k" if p < 10**6 else f"{p / 10**6:,.2f}M" for p in sizes], rotation=30)
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap when the sizes span under a decade
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("test accuracy (%), mean ± std")
    ax.set_title("test accuracy against model size", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return fig
