"""From what the user typed to one typed plan: the config, the run folder and, for --resume, the state to continue."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_cli.checkpoint import checkpoints_root, config_from_checkpoint, load_checkpoint
from mnist_cli.config import Config, apply_overrides, read_yaml, validate
from mnist_cli.errors import CheckpointError, ConfigError
from mnist_cli.naming import settings_name
from mnist_cli.training.rundir import LAST, RunDir
from mnist_cli.training.state import resume_payload

# Keys that may differ between a run and its resumption: where it runs and where its data lives, not what it computes.
# They are left out of default folder names too, so `--device cuda --resume auto` finds the run `--device cpu` began.
MAY_DIFFER = {("train", "device"), ("data", "root"), ("train", "tensorboard")}  # where and what observes it
RESOLVED = {("train", "threads")}  # None: torch's default, which the run resolves and records
DEFAULT_CONFIG_NAME = "default"


@dataclass(frozen=True)
class RunPlan:
    """What `mnist train` will do."""

    config: Config
    run_dir: RunDir
    resume_from: dict[str, Any] | None = None  # a loaded last.pt to continue
    resume_path: Path | None = None
    resume_asked: bool = False  # --resume was given (auto may find nothing and start a new run)

    @property
    def resuming(self) -> bool:
        return self.resume_from is not None


def plan_run(
    config_path: Path | None = None,
    overrides: list[str] | None = None,
    *,
    shortcuts: dict[str, Any] | None = None,
    resume: str | None = None,
    out: Path | None = None,
) -> RunPlan:
    """Config file + `--set` overrides + shortcuts (`{"train.epochs": 3}`, None for not given) + --resume + --out.
    A resumed run keeps its stored config; a config given as well must match it, except for the device."""
    shortcuts = {k: v for k, v in (shortcuts or {}).items() if v is not None}
    raw = read_yaml(config_path) if config_path is not None else {}
    source = str(config_path) if config_path else "config"
    cfg = validate(apply_overrides(raw, list(overrides or []), shortcuts), source)
    default_dir = RunDir(out or _folder(config_path, validate(raw, source), cfg))
    if resume is None:
        return RunPlan(cfg, default_dir)
    if resume == "auto":
        path, run_dir = default_dir.last, default_dir
        if not path.exists():
            return RunPlan(cfg, default_dir, resume_asked=True)
    else:
        path = Path(resume)
        if os.path.isdir(path):  # False for a name the system refuses: load_checkpoint says why
            raise CheckpointError(f"{path} is a folder; a run resumes from its last.pt: --resume {path / LAST}")
        run_dir = RunDir(out or path.parent)
    ckpt = load_checkpoint(path)
    resume_payload(ckpt, path)
    stored = config_from_checkpoint(ckpt, path)
    if config_path is not None or overrides or set(shortcuts) - {"train.device"}:
        differ = config_differences(stored, cfg)
        if differ:
            raise ConfigError(
                [f"{key}: {a!r} in the checkpoint, {b!r} now" for key, a, b in differ]
                + ["a resumed run keeps its config; drop --config/--set, or train into another --out"],
                f"--resume {path}",
            )
    if "train.device" in shortcuts:  # where it runs may change; validated where the device is resolved
        stored = stored.model_copy(update={"train": stored.train.model_copy(update={"device": shortcuts["train.device"]})})
    return RunPlan(stored, run_dir, ckpt, path, resume_asked=True)


def _folder(config_path: Path | None, base: Config, cfg: Config) -> Path:
    """The second part names the settings that change the config file's values (`model.width=512,train.epochs=3`), so
    different experiments never share a folder and the same command run twice finds its own run. Settings that
    repeat the file's values, or change only where the run happens (MAY_DIFFER), add nothing."""
    folder = checkpoints_root() / (config_path.stem if config_path else DEFAULT_CONFIG_NAME)
    changed = {key: new for key, _, new in config_differences(base, cfg, ordered=True)}
    return folder / settings_name(changed) if changed else folder


def config_differences(a: Config, b: Config, ordered: bool = False) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every setting that differs, sorted or in the schema's order, except
    MAY_DIFFER's and a RESOLVED key one side leaves unset: the one comparison (resume, folder names, compare, sweep)."""
    return _differences(a.model_dump(mode="json"), b.model_dump(mode="json"), (), ordered)


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: tuple[str, ...], ordered: bool) -> list[tuple[str, Any, Any]]:
    keys = [*a, *(k for k in b if k not in a)] if ordered else sorted(set(a) | set(b))
    out = []
    for key in keys:
        x, y, path = a.get(key), b.get(key), (*prefix, key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, path, ordered)
        elif x != y and path[-2:] not in MAY_DIFFER and not (path[-2:] in RESOLVED and None in (x, y)):
            out.append((".".join(path), x, y))
    return out
