"""From `--grid KEY=V1,V2` options to a validated plan: every cell x seed a config and a run folder, all checked first."""

from __future__ import annotations

import functools
import itertools
import json
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mnist_cli.checkpoint import checkpoints_root
from mnist_cli.config import Config, apply_overrides, read_yaml, validate
from mnist_cli.errors import ConfigError
from mnist_cli.naming import settings_name
from mnist_cli.sweep.run import RunSpec

MAX_RUNS = 10_000  # a typo such as --seeds 1000000 is refused before anything is planned
CELLS_SHOWN_PER_PROBLEM = 3


@dataclass(frozen=True)
class SweepPlan:
    """What `mnist sweep` will do: one RunSpec per cell and seed, in grid order (seeds innermost)."""

    out_dir: Path
    config_path: Path | None
    overrides: list[str]
    grid: dict[str, list[Any]]  # each swept key's values, in the order given
    seeds: list[int]
    base: Config
    runs: list[RunSpec]

    @property
    def keys(self) -> list[str]:
        return list(self.grid)

    def as_dict(self) -> dict[str, Any]:
        """sweep.yaml: enough to read what was asked and where each run lives."""
        return {
            "config": str(self.config_path) if self.config_path else None,
            "set": list(self.overrides),
            "grid": self.grid,
            "seeds": list(self.seeds),
            "base": self.base.model_dump(mode="json"),
            "runs": [{"params": r.params, "seed": r.seed, "out_dir": r.out_dir} for r in self.runs],
        }


def parse_grid(options: list[str]) -> dict[str, list[Any]]:
    """`KEY=V1,V2,...` per option, each value parsed as YAML (`[256,128],[128,256]` is two lists); all problems at once."""
    grid: dict[str, list[Any]] = {}
    problems: list[str] = []
    for text in options:
        key, sep, raw = (part.strip() for part in text.partition("="))
        try:
            values = yaml.safe_load(f"[{raw}]") if raw else []
        except yaml.YAMLError as e:
            problems.append(f"{key}: values are not valid YAML ({' '.join(str(e).split())})")
            continue
        if not sep or not key:
            problems.append(f"{text!r}: expected KEY=V1,V2,...")
        elif not values or any(v is None for v in values):
            problems.append(f"{key}: give at least one value and no empty ones (KEY=V1,V2,...)")
        elif key == "seed":
            problems.append("seed: sweep seeds with --seeds N (seeds seed, seed+1, ... of the base config)")
        elif key in grid:
            problems.append(f"{key}: given in two --grid options; list all its values in one")
        elif len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            problems.append(f"{key}: a value is listed twice")
        else:
            grid[key] = values
    if problems:
        raise ConfigError(problems, "--grid")
    return grid


def short_keys(keys: list[str]) -> dict[str, str]:
    """model.depth -> depth for folder names, unless two swept keys end alike (then both keep their full path)."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: (short if last.count(short) == 1 else key) for key, short in zip(keys, last, strict=True)}


def cell_name(params: dict[str, Any]) -> str:
    """A cell's folder name: `depth=2,width=128`."""
    shorts = short_keys(list(params))
    return settings_name({shorts[k]: v for k, v in params.items()})


def plan_sweep(config_path: Path | None, overrides: list[str], grid: list[str], seeds: int, out: Path | None = None) -> SweepPlan:
    """Validate the base config, the grid and every cell x seed before anything trains; ConfigError lists all problems."""
    if seeds < 1:
        raise ConfigError([f"--seeds must be at least 1, not {seeds}"], "--seeds")
    axes = parse_grid(grid)
    raw = read_yaml(config_path) if config_path is not None else {}
    base = validate(apply_overrides(raw, overrides), str(config_path) if config_path else "--set")
    combos = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    if len(combos) * seeds > MAX_RUNS:
        raise ConfigError([f"{len(combos)} cells x {seeds} seeds is more than {MAX_RUNS:,} runs"], "--grid")
    seed_values = [base.seed + i for i in range(seeds)]
    stem = "-".join([config_path.stem if config_path else "default", *(short_keys(list(axes)).values() or ["seeds"])])
    out_dir = Path(out or checkpoints_root() / "sweeps" / re.sub(r"[^A-Za-z0-9._-]", "_", stem)).resolve()

    problems: dict[str, dict[str, None]] = {}  # problem -> the cells it occurs in, each once
    runs: list[RunSpec] = []
    planned: set[Path] = set()
    for given in combos:
        label = cell_name(given)
        sets = [f"{key}={json.dumps(value)}" for key, value in given.items()]
        for seed in seed_values:
            try:
                cfg = validate(apply_overrides(raw, [*overrides, *sets, f"seed={seed}"]))
            except ConfigError as e:
                for problem in e.problems:
                    problems.setdefault(problem, {})[label] = None
                continue
            resolved = cfg.model_dump(mode="json")
            params = {key: functools.reduce(operator.getitem, key.split("."), resolved) for key in given}  # 1e-3 -> 0.001
            name = cell_name(params)
            folder = out_dir / name / f"seed={seed}"
            if folder in planned:  # 1e-3 and 0.001, say
                problems.setdefault(f"{name}: two grid values give the same setting", {})[label] = None
                continue
            planned.add(folder)
            runs.append(RunSpec(params=params, seed=seed, out_dir=str(folder), config=resolved))
    if problems:
        raise ConfigError([_with_cells(p, list(cells), len(combos)) for p, cells in problems.items()], "sweep")
    return SweepPlan(out_dir, config_path, list(overrides), axes, seed_values, base, runs)


def _with_cells(problem: str, cells: list[str], total: int) -> str:
    if len(cells) == total and total > 1:
        return f"{problem} (every cell)"
    more = f" and {len(cells) - CELLS_SHOWN_PER_PROBLEM} more" if len(cells) > CELLS_SHOWN_PER_PROBLEM else ""
    return f"{problem} (in {', '.join(cells[:CELLS_SHOWN_PER_PROBLEM])}{more})"
