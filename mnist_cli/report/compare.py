"""`mnist compare`: several runs' curves in one figure, and a table of only the settings that differ between them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_cli.checkpoint import checkpoints_root, load_checkpoint
from mnist_cli.config import Config
from mnist_cli.data.catalog import dataset_info
from mnist_cli.data.datasets import class_names
from mnist_cli.disk import atomic_write
from mnist_cli.errors import MnistError
from mnist_cli.model import parameter_count
from mnist_cli.naming import folder_name
from mnist_cli.report import figures, series
from mnist_cli.report.run import RunRecord, load_run
from mnist_cli.training.plan import config_differences
from mnist_cli.yaml_files import key_paths

COMPARE_FOLDER = "compare"  # default output: <checkpoints root>/compare/<run names joined by '+'>/
FIGURE, MARKDOWN = "compare.png", "compare.md"


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "settings": self.settings,
            "parameters": self.parameters,
            "epochs": self.epochs,
            "best_val_accuracy": self.best_val_accuracy,
            "test_accuracy": self.test_accuracy,
            "train_seconds": self.train_seconds,
        }


@dataclass(frozen=True)
class Comparison:
    runs: list[ComparedRun]
    differing_keys: list[str]  # in the config's order
    out_dir: Path
    files: list[Path]

    def as_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "files": [str(p) for p in self.files],
            "differing_keys": self.differing_keys,
            "runs": [r.as_dict() for r in self.runs],
        }


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
    keys = list(settings[0])
    rows = [_row(name, run, s) for name, run, s in zip(names, runs, settings, strict=True)]

    out_dir = Path(out) if out is not None else checkpoints_root() / COMPARE_FOLDER / folder_name("+".join(names))
    png = figures.png_bytes(
        figures.comparison([(n, r.metrics) for n, r in zip(names, runs, strict=True)], [series.step_loss(r) for r in runs])
    )
    atomic_write(out_dir / FIGURE, lambda f: f.write(png))
    table = markdown_table(rows, keys)
    atomic_write(out_dir / MARKDOWN, lambda f: f.write(f"# mnist compare\n\n{table}\n![curves]({FIGURE})\n".encode()))
    return Comparison(rows, keys, out_dir, [out_dir / FIGURE, out_dir / MARKDOWN])


def differing_settings(configs: list[Config]) -> list[dict[str, Any]]:
    """Per config, the settings whose values are not the same in every config, in the schema's order."""
    pairs = [{key: (a, b) for key, a, b in config_differences(configs[0], c, ordered=True)} for c in configs[1:]]
    order = {key: i for i, key in enumerate(key_paths(configs[0]))}
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


def value_text(value: Any) -> str:
    """A setting as a table cell: 0.002, relu, [256, 128], true, null."""
    return value if isinstance(value, str) else json.dumps(value)


def markdown_table(rows: list[ComparedRun], keys: list[str]) -> str:
    header = ["run", *keys, "parameters", "epochs", "best val acc", "test acc", "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r.name, *(value_text(r.settings[k]) for k in keys), *result_cells(r)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def result_cells(r: ComparedRun) -> list[str]:
    """parameters, epochs, best val accuracy, test accuracy, training seconds, as the table shows them."""
    pct = lambda v: f"{v:.2%}" if v is not None else "n/a"  # noqa: E731
    return [f"{r.parameters:,}", str(r.epochs), pct(r.best_val_accuracy), pct(r.test_accuracy), f"{r.train_seconds:.1f}"]


def _row(name: str, run: RunRecord, settings: dict[str, Any]) -> ComparedRun:
    vals = [m.val_accuracy for m in run.metrics if m.val_accuracy is not None]
    test = run.result.test_accuracy if run.result else None
    if run.result is None and not run.run_dir.events.exists() and run.run_dir.best.exists():
        # A run of the release before result.json: its best.pt carries the test accuracy.
        value = load_checkpoint(run.run_dir.best).get("metrics", {}).get("test_accuracy")
        test = float(value) if isinstance(value, int | float) else None
    cfg = run.config
    return ComparedRun(
        name=name,
        path=run.run_dir.path,
        settings=settings,
        parameters=parameter_count(
            cfg.model, dataset_info(cfg.data.dataset).in_features, len(class_names(cfg.data.dataset, cfg.data.root))
        ),
        epochs=run.epochs_done,
        best_val_accuracy=max(vals) if vals else None,
        test_accuracy=test,
        train_seconds=sum(m.seconds for m in run.metrics),
    )
