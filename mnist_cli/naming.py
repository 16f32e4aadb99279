"""Folder names made of settings, `model.width=512,train.epochs=3`: readable, stable, and safe on every file system."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

MAX_VALUE_CHARS = 24  # a longer value is shortened and keeps a hash of the whole, so two values never share a name
MAX_NAME_CHARS = 120  # well under the 255 bytes most file systems allow for one path component
# Characters some file system or shell treats specially (Windows forbids <>:"/\|?*; spaces and quotes need quoting).
UNSAFE = re.compile(r"[^A-Za-z0-9._+,\-\[\]@]")


def value_text(value: Any) -> str:
    """A setting's value as it reads in a name: 512, relu, 0.001, [256,128], true."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def settings_name(settings: dict[str, Any]) -> str:
    """`key=value,key=value` in the order given, each part made safe; too long a part or name ends in a short hash."""
    parts = [f"{_safe(key)}={_safe(value_text(value), MAX_VALUE_CHARS)}" for key, value in settings.items()]
    name = ",".join(parts) or "defaults"
    if len(name) > MAX_NAME_CHARS:
        name = name[: MAX_NAME_CHARS - 9] + "~" + _digest(name)
    return name


def _safe(text: str, limit: int | None = None) -> str:
    safe = UNSAFE.sub("_", text)
    if safe.startswith("."):  # never a hidden folder
        safe = "_" + safe[1:]
    if safe != text or (limit is not None and len(safe) > limit):
        # Replaced characters or a cut could make two values read the same: a hash of the original keeps them apart.
        keep = safe[: (limit or len(safe)) - 9] if limit is not None and len(safe) > limit else safe
        return f"{keep}~{_digest(text)}"
    return safe


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def folder_name(text: str) -> str:
    """`text` made safe as one folder name; past MAX_NAME_CHARS it is cut and keeps a hash of the whole."""
    return _safe(text, MAX_NAME_CHARS)


def layer_number(name: str) -> int:
    """'hidden.0' -> 1: people count hidden layers from 1; any other layer ('output') sorts after them."""
    return int(name.removeprefix("hidden.")) + 1 if name.startswith("hidden.") else 1 << 30


def layer_label(name: str) -> str:
    """'hidden.0' -> 'layer 1'; 'output' stays."""
    return f"layer {layer_number(name)}" if name.startswith("hidden.") else name
