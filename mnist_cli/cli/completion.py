"""Shell completion for the paths users type most: config files and checkpoints (`mnist --install-completion`)."""

from __future__ import annotations

import glob
import os

DEVICES = ("auto", "cpu", "cuda", "mps")
DEVICE_METAVAR = "<auto|cpu|cuda|cuda:N|mps>"  # not a fixed list: cuda:N takes any N
MAX_CANDIDATES = 200  # a completion list longer than this helps nobody, and a huge folder must not stall the shell


def _paths(incomplete: str, suffixes: tuple[str, ...], extra: tuple[str, ...] = ()) -> list[str]:
    """Folders (to descend into) and files ending in `suffixes` that start with `incomplete`, plus `extra` matches."""
    found: list[str] = []
    for path in sorted(glob.glob(glob.escape(os.path.expanduser(incomplete)) + "*")):
        if os.path.isdir(path):
            found.append(path + os.sep)
        elif path.endswith(suffixes):
            found.append(path)
        if len(found) >= MAX_CANDIDATES:
            break
    found += [p for p in extra if p.startswith(incomplete) and p not in found]
    return found[:MAX_CANDIDATES]


def complete_config(incomplete: str) -> list[str]:
    """YAML files, and the shipped configs/*.yaml."""
    return _paths(incomplete, (".yaml", ".yml"), tuple(sorted(glob.glob("configs/*.yaml"))))


def complete_checkpoint(incomplete: str) -> list[str]:
    """.pt files, and every best.pt/last.pt under the checkpoints folder."""
    # checkpoint.checkpoints_root() without importing torch (a second per Tab press)
    root = os.environ.get("MNIST_CHECKPOINT_DIR") or "checkpoints"
    known = sorted(glob.glob(os.path.join(glob.escape(root), "**", "*.pt"), recursive=True))[:MAX_CANDIDATES]
    return _paths(incomplete, (".pt",), tuple(known))


def complete_device(incomplete: str) -> list[str]:
    return [d for d in DEVICES if d.startswith(incomplete)]
