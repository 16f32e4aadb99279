"""The typed config: defaults live here, YAML overrides them, `--set a.b=v` overrides YAML."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from mnist_cli.data.catalog import DATASETS
from mnist_cli.errors import ConfigError
from mnist_cli.yaml_files import apply_overrides, describe_errors, nearest_key, read_yaml

__all__ = ["Config", "apply_overrides", "closest_key", "data_root", "load_config", "read_yaml", "to_yaml", "validate"]

DATA_DIR_ENV = "MNIST_DATA_DIR"
DEVICE_NAMES_HELP = "must be auto, cpu, cuda, cuda:N or mps"


def is_device_name(name: str) -> bool:
    """Whether `name` is a device this tool knows how to ask for (whether it exists here is checked later)."""
    return re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", name) is not None


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


def load_config(path: Path | None, overrides: list[str] = ()) -> Config:
    """Build the config from defaults, an optional YAML file and `--set` overrides."""
    raw = read_yaml(path) if path is not None else {}
    return validate(apply_overrides(raw, list(overrides)), str(path) if path else "config")


def validate(raw: dict[str, Any], source: str = "config") -> Config:
    """Validate a raw mapping, reporting every problem at once with its key path."""
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(describe_errors(e.errors(), Config), source) from None


def closest_key(key: str) -> str | None:
    """The dotted key a user probably meant (`width` -> model.width, `model.widht` -> model.width), or None when
    nothing is close: for messages about keys given outside a config file, such as a sweep's --grid."""
    return nearest_key(key, Config)


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML, every key written out."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
