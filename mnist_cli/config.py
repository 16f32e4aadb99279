"""The typed config: defaults live here, YAML overrides them, `--set a.b=v` overrides YAML."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from mnist_cli.data.catalog import DATASETS
from mnist_cli.errors import ConfigError

DATA_DIR_ENV = "MNIST_DATA_DIR"
DEVICE_NAMES_HELP = "must be auto, cpu, cuda, cuda:N or mps"


def is_device_name(name: str) -> bool:
    """Whether `name` is a device this tool knows how to ask for (whether it exists here is checked later)."""
    return re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", name) is not None


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


def _safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)


# YAML aliases can make a small file expand into billions of values, or into a mapping that contains itself.
MAX_YAML_VALUES = 100_000


def _number_kinds(annotation: Any) -> set[type]:
    """{int}, {float} or both for a field typed with numbers (also inside unions and lists); empty otherwise."""
    if annotation in (int, float):
        return {annotation}
    return set().union(*(_number_kinds(arg) for arg in get_args(annotation))) if get_args(annotation) else set()


class _Section(BaseModel):
    # allow_inf_nan=False: `lr: .nan` is "must be a finite number", not "should be <= 10".
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """Booleans are not numbers (`epochs: true` is not 1) and ints are whole (`3.0` is not 3); floats take ints."""
        kinds = _number_kinds(cls.model_fields[info.field_name].annotation)
        values = v if isinstance(v, list) else [v]
        if kinds and any(isinstance(x, bool) for x in values):
            raise ValueError("must be a number, not true or false")
        if kinds == {int} and any(isinstance(x, float) for x in values):
            raise ValueError("must be a whole number")
        return v


class AugmentConfig(_Section):
    """Per-image random affine (and elastic) warps, drawn uniformly in +-each magnitude; 0 turns one off."""

    rotate: float = Field(0.0, ge=0.0, le=180.0)  # degrees
    shift: float = Field(0.0, ge=0.0, le=14.0)  # pixels, in x and y independently
    scale: float = Field(0.0, ge=0.0, lt=1.0)  # fraction: 0.1 scales by 0.9..1.1
    shear: float = Field(0.0, ge=0.0, lt=90.0)  # degrees
    # Elastic warp: a random displacement on an elastic_grid x elastic_grid lattice, smoothly interpolated.
    elastic_alpha: float = Field(0.0, ge=0.0, le=14.0)  # largest displacement of a lattice point, pixels
    elastic_grid: int = Field(4, ge=2, le=28)  # fewer points: smoother, larger-scale warps

    @property
    def enabled(self) -> bool:
        """True if any distortion is on."""
        return any((self.rotate, self.shift, self.scale, self.shear, self.elastic_alpha))


class DataConfig(_Section):
    # MNIST-style files, scikit-learn's 8x8 digits, or a truth table's four points (data/catalog.py).
    dataset: Literal["mnist", "fashion-mnist", "kmnist", "digits", "xor", "and", "or"] = "mnist"
    # None means $MNIST_DATA_DIR, else ./data (resolved when the data is loaded, not stored).
    root: str | None = None
    # Examples held out of the training set for model selection; the test set is never used for it.
    # Left out, the dataset's own: 5000 of MNIST's 60k, 144 of digits' 1,437, 0 for a truth table.
    val_size: int = Field(5000, ge=0, le=50000)
    # True: (x/255 - mean) / std with the dataset's constants; False: x/255 only.
    normalize: bool = True
    # Random distortions of training batches (never of val/test); all off by default.
    augment: AugmentConfig = AugmentConfig()

    @model_validator(mode="before")
    @classmethod
    def _dataset_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and "val_size" not in data:
            name = data.get("dataset", "mnist")
            info = DATASETS.get(name) if isinstance(name, str) else None  # anything else: the field check says so
            if info is not None:
                data = {**data, "val_size": info.default_val_size}
        return data

    @model_validator(mode="after")
    def _fits_the_dataset(self) -> DataConfig:
        if DATASETS[self.dataset].kind == "table":
            if self.val_size:
                raise ValueError(
                    f"val_size {self.val_size}: {self.dataset} trains on all four points, so validation is off; "
                    "set 0 or leave it out"
                )
            if self.augment.enabled:
                raise ValueError(f"augment warps images; {self.dataset} is a truth table")
        return self

    @field_validator("root")
    @classmethod
    def _a_usable_path(cls, v: str | None) -> str | None:
        if v is not None and ("\0" in v or not v.strip()):
            raise ValueError("must be a folder path (not empty, no NUL characters)")
        return v


class ModelConfig(_Section):
    # Hidden layers; 0 gives a linear softmax model (inputs straight to classes).
    depth: int = Field(2, ge=0, le=64)
    # One width for every hidden layer, or a list with one width per layer.
    width: int | list[int] = 512
    activation: Literal["relu", "gelu", "silu", "tanh", "sigmoid"] = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    norm: Literal["none", "batch", "layer"] = "none"
    # uniform01: weights uniform in [0, 1), biases zero, as the XOR tutorial initialises.
    init: Literal["default", "xavier", "kaiming", "uniform01"] = "default"

    @field_validator("width")
    @classmethod
    def _positive_widths(cls, v: int | list[int]) -> int | list[int]:
        widths = v if isinstance(v, list) else [v]
        if any(w < 1 or w > 65536 for w in widths):
            raise ValueError("every width must be between 1 and 65536")
        return v

    @model_validator(mode="after")
    def _width_list_matches_depth(self) -> ModelConfig:
        if isinstance(self.width, list) and len(self.width) != self.depth:
            raise ValueError(
                f"width lists {len(self.width)} layers but depth is {self.depth}; give one width per hidden layer or a single int"
            )
        return self

    @property
    def hidden_widths(self) -> list[int]:
        """One width per hidden layer."""
        return list(self.width) if isinstance(self.width, list) else [self.width] * self.depth


class TrainConfig(_Section):
    # The defaults are the recommended recipe, configs/default.yaml: 98.5% in seconds on a CPU.
    epochs: int = Field(4, ge=1, le=10000)
    batch_size: int = Field(256, ge=1, le=65536)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    # Up to 100: a full-batch recipe written for gradients summed over N examples maps to lr x N here (mean loss).
    lr: float = Field(2e-3, gt=0.0, le=100.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # sgd only
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    schedule: Literal["none", "cosine", "onecycle"] = "onecycle"
    # Linear warm-up from 0 over this many epochs (fractions allowed), before the schedule.
    warmup_epochs: float = Field(0.0, ge=0.0)
    # cross_entropy; nll: log_softmax then NLL, the same numbers by another road; mse: softmax vs one-hot targets.
    loss: Literal["cross_entropy", "nll", "mse"] = "cross_entropy"
    # cross_entropy and nll only; left out with mse it is 0.
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    device: str = "auto"
    # bf16 autocast on CUDA; ignored on the CPU.
    amp: bool = False
    # Intra-op CPU threads; None keeps torch's default (one per core), which measured fastest at batch 15-256.
    threads: int | None = Field(None, ge=1, le=1024)
    # torch.compile the model: costs tens of seconds of compilation up front; off unless it pays (README, Performance).
    compile: bool = False
    eval_batch_size: int = Field(2048, ge=1, le=1 << 20)
    # Also write last.pt every N optimizer steps, so a killed run loses at most N steps; 0: at epoch ends only.
    save_every_steps: int = Field(0, ge=0, le=10**9)
    # A NaN or inf loss: stop (keep the last good checkpoint, exit non-zero) or skip that batch's update.
    on_nan: Literal["stop", "skip"] = "stop"
    # Validate, write a metrics row and best.pt every N epochs (and at the last); 0: automatic, every
    # ceil(epochs / 100) epochs, so a run commits at most ~100 epochs (every epoch for runs up to 100 epochs).
    log_every_epochs: int = Field(0, ge=0, le=10000)
    # Write last.pt every N epochs (and at the last); 0: with every logged epoch.
    save_every_epochs: int = Field(0, ge=0, le=10000)
    # Record layer health (gradients, update sizes, dead and saturated units) into health.jsonl while training, on a
    # fixed batch of 512 validation images: health_probes_per_epoch times an epoch plus each epoch's last step.
    health: bool = True
    health_probes_per_epoch: int = Field(4, ge=1, le=1000)
    # Also write the run's record as a TensorBoard event file in the run folder (`tensorboard --logdir checkpoints`):
    # losses, accuracies, layer health, weight and gradient histograms at the probes, the first layer as an image.
    tensorboard: bool = True

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        if not is_device_name(v):
            raise ValueError(DEVICE_NAMES_HELP)
        return v

    @model_validator(mode="before")
    @classmethod
    def _loss_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("loss") == "mse" and "label_smoothing" not in data:
            data = {**data, "label_smoothing": 0.0}
        return data

    @model_validator(mode="after")
    def _smoothing_needs_a_log_loss(self) -> TrainConfig:
        if self.loss == "mse" and self.label_smoothing:
            raise ValueError(
                f"label_smoothing {self.label_smoothing}: applies to cross_entropy and nll; with loss mse set 0 or leave it out"
            )
        return self

    @property
    def log_every(self) -> int:
        """Epochs between logged (validated, checkpointed) epochs."""
        return self.log_every_epochs or -(-self.epochs // 100)

    @property
    def save_every(self) -> int:
        """Epochs between writes of last.pt."""
        return self.save_every_epochs or self.log_every

    @model_validator(mode="after")
    def _warmup_within_run(self) -> TrainConfig:
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) exceeds epochs ({self.epochs})")
        return self


class Config(_Section):
    seed: int = Field(0, ge=0, le=2**32 - 1)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _batch_norm_needs_batches(self) -> Config:
        # Batch norm cannot normalise a batch of one sample: training would crash at the first step.
        if self.model.norm == "batch" and self.train.batch_size < 2:
            raise ValueError("model.norm batch needs train.batch_size of at least 2")
        return self


def default_data_root() -> Path:
    """$MNIST_DATA_DIR if set, else ./data."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def data_root(cfg: DataConfig) -> Path:
    """Where the dataset lives for this config; an explicit data.root that exists must be a folder."""
    if not cfg.root:
        return default_data_root()
    root = Path(cfg.root).expanduser()
    if root.exists() and not root.is_dir():
        raise ConfigError([f"data.root: {root} is not a folder (it should hold MNIST/raw/)"])
    return root


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b=value` into (["a", "b"], parsed YAML value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError([f"{text!r}: expected KEY.PATH=VALUE"], "--set")
    try:
        value = _safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError([f"{key}: value is not valid YAML ({_one_line(e)})"], "--set") from None
    except RecursionError:
        raise ConfigError([f"{key}: value is nested too deeply"], "--set") from None
    _check_size(value, f"--set {key}")
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `raw` with each `a.b=v` override set."""
    out = _deep_copy(raw)
    for text in overrides:
        path, value = parse_override(text)
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
    from mnist_cli.disk import A_FOLDER, unreadable_file

    problem = unreadable_file(path)
    if problem == A_FOLDER:
        raise ConfigError(["is a folder; give a YAML file (such as configs/default.yaml)"], str(path))
    if problem:
        raise ConfigError([problem], str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"cannot read: {_one_line(e)}"], str(path)) from None
    try:
        raw = _safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError([f"invalid YAML: {_one_line(e)}"], str(path)) from None
    except RecursionError:
        raise ConfigError(["invalid YAML: nested too deeply"], str(path)) from None
    _check_size(raw, str(path))
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError([f"expected a mapping of keys at the top, got {type(raw).__name__}"], str(path))
    return raw


def load_config(path: Path | None, overrides: list[str] = ()) -> Config:
    """Build the config from defaults, an optional YAML file and `--set` overrides."""
    raw = read_yaml(path) if path is not None else {}
    return validate(apply_overrides(raw, list(overrides)), str(path) if path else "config")


def validate(raw: dict[str, Any], source: str = "config") -> Config:
    """Validate a raw mapping, reporting every problem at once with its key path."""
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError([_describe(err) for err in e.errors()], source) from None


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML, every key written out."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def _describe(err: dict[str, Any]) -> str:
    loc = _key_path(err["loc"], keep_last=err["type"] == "extra_forbidden")
    key = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key{_did_you_mean(loc)}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "finite_number":
        msg = "must be a finite number"
    if err["type"] not in ("missing",) and "input" in err and not isinstance(err["input"], dict | list):
        msg += f" (got {err['input']!r})"
    return f"{key}: {msg}"


def _key_path(loc: tuple[Any, ...], keep_last: bool) -> list[str]:
    """The user's key path in a pydantic error location, without pydantic's own union and validator tags.

    A part is kept when it names a field of the section reached so far, indexes a list, or (for an
    unknown key) is the last part; tags such as `int`, `list[int]` or `function-after[...]` are not.
    """
    model: type[BaseModel] | None = Config
    path: list[str] = []
    for i, part in enumerate(loc):
        is_last = i == len(loc) - 1
        if isinstance(part, int):
            path.append(str(part))
        elif model is not None and part in model.model_fields:
            path.append(part)
            annotation = model.model_fields[part].annotation
            model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        elif is_last and keep_last:
            path.append(str(part))
    return path


def _did_you_mean(loc: list[str]) -> str:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    known = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6) if loc else []
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known keys: {', '.join(known)})"


def _check_size(value: Any, source: str) -> None:
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


def _deep_copy(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in raw.items()}


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())
