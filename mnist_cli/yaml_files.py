"""The YAML a user wrote and what is wrong with it: one mapping, no key twice, no alias bombs, `--set a.b=v`
overrides, and pydantic's errors in the user's key paths with a did-you-mean. The schema itself is config.py's."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Hashable
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel

from mnist_cli.disk import A_FOLDER, NO_SUCH_FILE, unreadable_file
from mnist_cli.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a mapping with the same key twice, instead of silently keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Explicit keys only: a key that overrides one brought in by a `<<` merge is ordinary YAML.
        explicit = [k for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]
        keys = [self.construct_object(k, deep=deep) for k in explicit]
        hashable = [k for k in keys if isinstance(k, Hashable)]
        for key_node, key in zip(explicit, keys, strict=True):
            if isinstance(key, Hashable) and hashable.count(key) > 1:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)


# YAML aliases can make a small file expand into billions of values, or into a mapping that contains itself.
MAX_YAML_VALUES = 100_000


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b=value` into (["a", "b"], parsed YAML value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError([f"{text!r}: expected KEY.PATH=VALUE"], "--set")
    try:
        value = safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError([f"{key}: value is not valid YAML ({_one_line(e)})"], "--set") from None
    except RecursionError:
        raise ConfigError([f"{key}: value is nested too deeply"], "--set") from None
    check_size(value, f"--set {key}")
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str], values: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of `raw` with each `a.b=v` override set, then each dotted key of `values` (typed: the command's shortcuts)."""
    out = copy.deepcopy(raw)
    for path, value in [*map(parse_override, overrides), *((k.split("."), v) for k, v in (values or {}).items())]:
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping from `path`, with errors a user can act on."""
    problem = unreadable_file(path)
    if problem == A_FOLDER:
        raise ConfigError(["is a folder; give a YAML file (such as configs/default.yaml)"], str(path))
    if problem == NO_SUCH_FILE:
        yamls = [p.name for p in path.parent.glob("*") if p.suffix in (".yaml", ".yml")]
        near = difflib.get_close_matches(path.name, yamls, n=1, cutoff=0.75)
        raise ConfigError([problem + (f" (did you mean {path.with_name(near[0])}?)" if near else "")], str(path))
    if problem:
        raise ConfigError([problem], str(path))
    try:
        raw = safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError([f"not a YAML file: it is not text (byte 0x{e.object[e.start]:02x} at {e.start})"], str(path)) from None
    except OSError as e:
        raise ConfigError([f"cannot read: {_one_line(e)}"], str(path)) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"invalid YAML: {_one_line(e)}"], str(path)) from None
    except RecursionError:
        raise ConfigError(["invalid YAML: nested too deeply"], str(path)) from None
    check_size(raw, str(path))
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError([f"expected a mapping of keys at the top, got {type(raw).__name__}"], str(path))
    return raw


def check_size(value: Any, source: str) -> None:
    """Refuse YAML whose aliases expand past MAX_YAML_VALUES values or loop back into themselves (walked without recursion)."""
    stack, visited = [value], 0
    while stack:
        node = stack.pop()
        visited += 1
        if visited > MAX_YAML_VALUES:
            raise ConfigError(
                [f"expands to more than {MAX_YAML_VALUES:,} values (YAML aliases, or one that contains itself)"], source
            )
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple | set):
            stack.extend(node)


def _number_kinds(annotation: Any) -> set[type]:
    """{int}, {float} or both for a field typed with numbers (also inside unions and lists); empty otherwise."""
    if annotation in (int, float):
        return {annotation}
    return set().union(*(_number_kinds(arg) for arg in get_args(annotation))) if get_args(annotation) else set()


def strict_number(value: Any, annotation: Any) -> Any:
    """YAML's `true` is not the number 1 and `3.0` is not the whole number 3 (floats take ints): `value`, or ValueError."""
    kinds = _number_kinds(annotation)
    values = value if isinstance(value, list) else [value]
    if kinds and any(isinstance(x, bool) for x in values):
        raise ValueError("must be a number, not true or false")
    if kinds == {int} and any(isinstance(x, float) for x in values):
        raise ValueError("must be a whole number")
    return value


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


Model = type[BaseModel]


def describe_errors(errors: list[dict[str, Any]], model: Model) -> list[str]:
    """pydantic's errors for `model` as `key.path: what is wrong (got ...)` lines, a user's words."""
    keys = [_key(err, model) for err in errors]
    # `--set model.width=512,256` is the string '512,256', refused as an int and as a list: say how a list is written.
    lists = {
        k: err["input"] for k, err in zip(keys, errors, strict=True) if err["type"] == "list_type" and "," in str(err["input"])
    }
    problems = [f"{k}: a list is written in brackets, [{v}] (got {v!r})" for k, v in lists.items()]
    for key, err in zip(keys, errors, strict=True):
        if err["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key{_did_you_mean(key.split('.'), model)}")
        elif key not in lists:
            msg = "must be a finite number" if err["type"] == "finite_number" else err["msg"].removeprefix("Value error, ")
            if err["type"] != "missing" and "input" in err and not isinstance(err["input"], dict | list):
                msg += f" (got {err['input']!r})"
            problems.append(f"{key}: {msg}")
    return problems


def _key(err: dict[str, Any], model: Model | None) -> str:
    """The user's key path in a pydantic error location, without pydantic's own union and validator tags.

    A part is kept when it names a field of the section reached so far, indexes a list, or (for an
    unknown key) is the last part; tags such as `int`, `list[int]` or `function-after[...]` are not.
    """
    path: list[str] = []
    for i, part in enumerate(err["loc"]):
        if isinstance(part, int):
            path.append(str(part))
        elif model is not None and part in model.model_fields:
            path.append(part)
            model = _section(model, part)
        elif i == len(err["loc"]) - 1 and err["type"] == "extra_forbidden":
            path.append(str(part))
    return ".".join(path) or "(top level)"


def _did_you_mean(loc: list[str], root: Model) -> str:
    model = root
    for part in loc[:-1]:
        if (section := _section(model, part)) is None:
            return ""
        model = section
    known = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6) or [nearest_key(".".join(loc), root)]
    return f" (did you mean {close[0]!r}?)" if close[0] else f" (known keys: {', '.join(known)})"


def key_paths(model: Model, prefix: str = "") -> list[str]:
    """Every settable key of `model` as a dotted path: seed, data.dataset, ..., train.lr."""
    paths = []
    for name in model.model_fields:
        section = _section(model, name)
        paths += key_paths(section, f"{prefix}{name}.") if section else [prefix + name]
    return paths


def nearest_key(key: str, model: Model) -> str | None:
    """The dotted key of `model` closest to `key`: the one key with its last part, else a close spelling; or None."""
    paths = key_paths(model)
    if key in paths:
        return key
    by_leaf = [p for p in paths if p.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]]
    return by_leaf[0] if len(by_leaf) == 1 else next(iter(difflib.get_close_matches(key, paths, n=1, cutoff=0.75)), None)


def _section(model: Model, name: str) -> Model | None:
    annotation = getattr(model.model_fields.get(name), "annotation", None)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
