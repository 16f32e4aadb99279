"""From what the user typed to one typed plan: the config, the run folder and, for --resume, the state to continue."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_cli.checkpoint import checkpoints_root, config_from_checkpoint, load_checkpoint
from mnist_cli.config import Config, load_config, validate
from mnist_cli.errors import ConfigError
from mnist_cli.naming import settings_name
from mnist_cli.training.rundir import RunDir
from mnist_cli.training.state import resume_payload

# Keys that may differ between a run and its resumption: where it runs and where its data lives, not what it computes.
# They are left out of default folder names too, so `--device cuda --resume auto` finds the run `--device cpu` began.
MAY_DIFFER = {("train", "device"), ("data", "root")}
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

    Without --out the run folder is named by the config and the overrides that change it (`default_out_dir`).
    A resumed run keeps its stored config; a config given as well must match it, except for the device.
    """
    shortcuts = {k: v for k, v in (shortcuts or {}).items() if v is not None}
    device = shortcuts.pop("train.device", None)
    # Each value written as JSON, which YAML reads back as given: a --data-root named `yes` or `a: b` stays a string.
    sets = list(overrides or []) + [f"{k}={json.dumps(v)}" for k, v in shortcuts.items()]
    default_dir = RunDir(out or default_out_dir(config_path, sets))
    if resume is None:
        return RunPlan(
            load_config(config_path, sets + ([f"train.device={json.dumps(device)}"] if device is not None else [])), default_dir
        )
    given = config_path is not None or bool(sets)
    if resume == "auto":
        cfg = load_config(config_path, sets)
        path = default_dir.last
        if not path.exists():
            return RunPlan(_with_device(cfg, device), default_dir, resume_asked=True)
        run_dir = default_dir
    else:
        path = Path(resume)
        run_dir = RunDir(out or path.parent)
    ckpt = load_checkpoint(path)
    resume_payload(ckpt, path)
    stored = config_from_checkpoint(ckpt, path)
    if given:
        differ = config_differences(stored, load_config(config_path, sets))
        if differ:
            raise ConfigError(
                [f"{key}: {a!r} in the checkpoint, {b!r} now" for key, a, b in differ]
                + ["a resumed run keeps its config; drop --config/--set, or train into another --out"],
                f"--resume {path}",
            )
    return RunPlan(_with_device(stored, device), run_dir, ckpt, path, resume_asked=True)


def default_out_dir(config_path: Path | None, overrides: list[str] | None = None) -> Path:
    """checkpoints/<config name>/[<changed settings>/] (under $MNIST_CHECKPOINT_DIR when set).

    The second part names the overrides that change the config file's values (`model.width=512,train.epochs=3`), so
    different experiments never share a folder and the same command run twice finds its own run. Overrides that
    repeat the file's values, or change only where the run happens (MAY_DIFFER), add nothing.
    """
    folder = checkpoints_root() / (config_path.stem if config_path else DEFAULT_CONFIG_NAME)
    changed = changed_settings(load_config(config_path), load_config(config_path, overrides or []))
    return folder / settings_name(changed) if changed else folder


def changed_settings(base: Config, cfg: Config) -> dict[str, Any]:
    """{"model.width": 512, ...}: every key whose value in `cfg` differs from `base`, in the config's order."""
    return {key: new for key, _, new in config_differences(base, cfg, ordered=True)}


def _with_device(cfg: Config, device: str | None) -> Config:
    if device is None:
        return cfg
    return validate({**cfg.model_dump(mode="json"), "train": {**cfg.train.model_dump(mode="json"), "device": device}})


def config_differences(stored: Config, given: Config, ordered: bool = False) -> list[tuple[str, Any, Any]]:
    """(key, stored, given) for every key that differs, except those in MAY_DIFFER; sorted, or in the schema's order.

    Nested sections (data.augment) give dotted keys of their own: `data.augment.rotate`.
    """
    return _differences(stored.model_dump(mode="json"), given.model_dump(mode="json"), (), ordered)


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: tuple[str, ...], ordered: bool) -> list[tuple[str, Any, Any]]:
    keys = [*a, *(k for k in b if k not in a)] if ordered else sorted(set(a) | set(b))
    out = []
    for key in keys:
        x, y, path = a.get(key), b.get(key), (*prefix, key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, path, ordered)
        elif x != y and path[-2:] not in MAY_DIFFER:
            out.append((".".join(path), x, y))
    return out
