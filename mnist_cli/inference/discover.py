"""Which checkpoint `predict` and `serve` use when none is given, and why: the user's best image model, never a
truth-table model, and a sweep's runs only when nothing else reads images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_cli.checkpoint import checkpoints_root, config_from_checkpoint, load_checkpoint
from mnist_cli.data.catalog import dataset_info
from mnist_cli.errors import CheckpointError, MnistError
from mnist_cli.inference.trained import TrainedModel, load_trained
from mnist_cli.record import read_result

SWEEP_PLAN = "sweep.yaml"  # in a sweep's folder: each run is OUT/<cell>/seed=S/


@dataclass(frozen=True)
class _Found:
    path: Path
    images: bool  # trained on images (not a truth table)
    accuracy: float  # test accuracy; -1 if never tested
    mtime: float


def choose_checkpoint(root: Path | None = None) -> tuple[Path, str]:
    """(path, why): the image model with the best test accuracy under `root` (newest first on ties), sweep runs only
    as a last resort; `why` is "" when there was nothing to choose from. Raises CheckpointError when there is none."""
    root = Path(root) if root is not None else checkpoints_root()
    every = sorted(root.glob("**/best.pt")) if root.is_dir() else []
    if not every:
        raise CheckpointError(f"no best.pt under {root}/; train one with `mnist train` or pass --checkpoint")
    sweeps = [p for p in every if _in_sweep(p, root)]
    found = [f for f in map(_read, (p for p in every if p not in sweeps)) if f is not None]
    pool = [f for f in found if f.images]
    left_out = {
        "sweep run": len(sweeps),
        "truth-table model": len(found) - len(pool),
        "unreadable file": len(every) - len(sweeps) - len(found),
    }
    of_what = f"image models under {root}/"
    if not pool:  # a sweep's runs are small models trained for a comparison: only when nothing else reads images
        pool, left_out["sweep run"] = [f for f in map(_read, sweeps) if f is not None and f.images], 0
        of_what += ", all of them sweep runs"
    if not pool:
        raise CheckpointError(
            f"no model trained on images under {root}/ ({len(every)} best.pt: truth tables or unreadable); "
            "train one with `mnist train` or pass --checkpoint"
        )
    best = max(pool, key=lambda f: (f.accuracy, f.mtime))
    skipped = ", ".join(f"{n} {kind}{'s' * (n > 1)}" for kind, n in left_out.items() if n)
    if len(pool) == 1 and not skipped:
        return best.path, ""
    why = f": the best test accuracy of {len(pool)} {of_what}" + (f" (left out: {skipped})" if skipped else "")
    return best.path, why + "; -m picks another"


def _in_sweep(path: Path, root: Path) -> bool:
    """A sweep's run: under root/sweeps/ (the default sweep folder) or two folders below a sweep's plan."""
    return path.relative_to(root).parts[0] == "sweeps" or (path.parent.parent.parent / SWEEP_PLAN).exists()


def _read(path: Path) -> _Found | None:
    """What the choice needs: the run's result.json (its dataset and test accuracy), else what an older release's
    checkpoint holds; None if neither can be read (the command names the one it uses)."""
    try:
        result = read_result(path.parent)
        if result is not None:
            return _Found(path, dataset_info(result.dataset).kind == "images", result.test_accuracy, path.stat().st_mtime)
        ckpt = load_checkpoint(path)
        kind = dataset_info(config_from_checkpoint(ckpt, path).data.dataset).kind
        metrics = ckpt.get("metrics")
        accuracy = metrics.get("test_accuracy") if isinstance(metrics, dict) else None
        tested = float(accuracy) if isinstance(accuracy, int | float) else -1.0
        return _Found(path, kind == "images", tested, path.stat().st_mtime)
    except (MnistError, OSError):
        return None


def image_model(checkpoint: Path | None, command: str, device: str | torch.device = "cpu") -> tuple[TrainedModel, str | None]:
    """The model `command` reads images with, and the line naming it when it was chosen here (None for -m's).

    A truth-table model is refused in one line that says what to do instead.
    """
    path, why = choose_checkpoint() if checkpoint is None else (checkpoint, None)
    trained = load_trained(path, device)
    if trained.dataset.kind != "images":
        raise MnistError(
            f"{trained.path} was trained on the {trained.dataset.name} truth table: {command} takes no images; "
            f"`mnist eval {trained.path}` prints its outputs for the four points"
        )
    return trained, None if why is None else f"using checkpoint {trained.path} ({trained.describe()}){why}"
