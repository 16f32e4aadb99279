"""`mnist compare`: several runs' curves in one figure, and a table of only the settings that differ between them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnist_cli.checkpoint import checkpoints_root, load_checkpoint
from mnist_cli.config import Config
from mnist_cli.data.catalog import dataset_info
from mnist_cli.data.datasets import class_names
from mnist_cli.disk import atomic_write
from mnist_cli.errors import MnistError
from mnist_cli.model import parameter_count
from mnist_cli.naming import folder_name, value_text
from mnist_cli.report import figures, series
from mnist_cli.report.run import RunRecord, load_run
from mnist_cli.training.plan import config_differences
from mnist_cli.yaml_files import key_paths

COMPARE_FOLDER = "compare"  # default output: <checkpoints root>/compare/<run names joined by '+'>/
FIGURE, MARKDOWN = "compare.png", "compare.md"
RESULT_COLUMNS = ["parameters", "epochs", "best val acc", "test acc", "train s"]


@dataclass(frozen=True)
class ComparedRun:
    """One run's row: the settings that differ from the other runs, and how it did."""

    name: str
    path: Path
    settings: dict[str, Any]  # only the config keys that differ between the runs compared
    parameters: int
    epochs: int  # finished epochs
    best_val_accuracy: float | None
    test_accuracy: float | None  # None until the run finished (its result.json)
    train_seconds: float

    def cells(self, keys: list[str]) -> list[str]:
        """The row as the tables show it: name, the differing settings, then RESULT_COLUMNS."""
        pct = lambda v: f"{v:.2%}" if v is not None else "n/a"  # noqa: E731
        results = [f"{self.parameters:,}", str(self.epochs), pct(self.best_val_accuracy), pct(self.test_accuracy)]
        return [self.name, *(value_text(self.settings[k]) for k in keys), *results, f"{self.train_seconds:.1f}"]


@dataclass(frozen=True)
class Comparison:
    runs: list[ComparedRun]
    differing_keys: list[str]  # in the config's order
    out_dir: Path
    files: list[Path]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types: paths as strings."""
        return json.loads(json.dumps(asdict(self), default=str))

    def table(self) -> list[list[str]]:
        """The header, then one row of cells per run."""
        return [["run", *self.differing_keys, *RESULT_COLUMNS], *(r.cells(self.differing_keys) for r in self.runs)]


def compare_runs(paths: list[Path], out: Path | None = None) -> Comparison:
    """Read every run, find the settings that differ, write compare.png and compare.md."""
    if len(paths) < 2:
        raise MnistError("compare needs at least two runs (for one run, use `mnist report`)")
    runs = [load_run(p) for p in paths]
    folders = [r.run_dir.path.resolve() for r in runs]
    if twice := next((p for p, f in zip(paths, folders, strict=True) if folders.count(f) > 1), None):
        raise MnistError(f"{twice}: the same run is given twice")
    names = run_names(folders)
    settings = differing_settings([r.config for r in runs])
    out_dir = Path(out) if out is not None else checkpoints_root() / COMPARE_FOLDER / folder_name("+".join(names))
    rows = [_row(*row) for row in zip(names, runs, settings, strict=True)]
    result = Comparison(rows, list(settings[0]), out_dir, [out_dir / FIGURE, out_dir / MARKDOWN])
    steps = [series.over_steps(r, "loss") for r in runs]
    png = figures.png_bytes(figures.comparison([(n, r.metrics) for n, r in zip(names, runs, strict=True)], steps))
    atomic_write(out_dir / FIGURE, lambda f: f.write(png))
    lines = ["| " + " | ".join(row) + " |" for row in result.table()]
    lines.insert(1, "|" + "---|" * len(result.table()[0]))
    markdown = "# mnist compare\n\n" + "\n".join(lines) + f"\n\n![curves]({FIGURE})\n"
    atomic_write(out_dir / MARKDOWN, lambda f: f.write(markdown.encode()))
    return result


def differing_settings(configs: list[Config]) -> list[dict[str, Any]]:
    """Per config, the settings whose values are not the same in every config, in the schema's order."""
    pairs = [{key: (a, b) for key, a, b in config_differences(configs[0], c, ordered=True)} for c in configs[1:]]
    order = {key: i for i, key in enumerate(key_paths(type(configs[0])))}
    keys = sorted({key for pair in pairs for key in pair}, key=lambda key: order.get(key, len(order)))
    first = {key: next(pair[key][0] for pair in pairs if key in pair) for key in keys}
    return [first] + [{key: pair[key][1] if key in pair else first[key] for key in keys} for pair in pairs]


def run_names(folders: list[Path]) -> list[str]:
    """Each run's folder name; where two share one, as many parent folders as tell them apart."""
    for depth in range(1, max(len(f.parts) for f in folders) + 1):
        names = ["/".join(f.parts[-depth:]) for f in folders]
        if len(set(names)) == len(names):
            return names
    return [str(f) for f in folders]


def _row(name: str, run: RunRecord, settings: dict[str, Any]) -> ComparedRun:
    vals = [m.val_accuracy for m in run.metrics if m.val_accuracy is not None]
    test = run.result.test_accuracy if run.result else None
    if run.result is None and not run.run_dir.events.exists() and run.run_dir.best.exists():
        # A run of the release before result.json: its best.pt carries the test accuracy.
        value = load_checkpoint(run.run_dir.best).get("metrics", {}).get("test_accuracy")
        test = float(value) if isinstance(value, int | float) else None
    data = run.config.data
    classes = len(class_names(data.dataset, data.root))
    return ComparedRun(
        name=name,
        path=run.run_dir.path,
        settings=settings,
        parameters=parameter_count(run.config.model, dataset_info(data.dataset).in_features, classes),
        epochs=run.epochs_done,
        best_val_accuracy=max(vals) if vals else None,
        test_accuracy=test,
        train_seconds=sum(m.seconds for m in run.metrics),
    )
