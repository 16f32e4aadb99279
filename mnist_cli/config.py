"""The typed config: defaults live here, YAML overrides them, `--set a.b=v` overrides YAML."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from mnist_cli.data.catalog import DATASETS
from mnist_cli.errors import ConfigError
from mnist_cli.yaml_files import apply_overrides, describe_errors, read_yaml, strict_number

__all__ = ["Config", "apply_overrides", "data_root", "load_config", "read_yaml", "to_yaml", "validate"]

DEVICE_NAMES_HELP = "must be auto, cpu, cuda, cuda:N or mps"


def is_device_name(name: str) -> bool:
    """Whether `name` is a device this tool knows how to ask for (whether it exists here is checked later)."""
    return re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", name) is not None


class _Section(BaseModel):
    # allow_inf_nan=False: `lr: .nan` is "must be a finite number", not "should be <= 10".
    # use_attribute_docstrings: the string under each field is its description (docs/reference.py shows it).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False, use_attribute_docstrings=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """Booleans are not numbers (`epochs: true` is not 1) and ints are whole (`3.0` is not 3); floats take ints."""
        return strict_number(v, cls.model_fields[info.field_name].annotation)


class AugmentConfig(_Section):
    """Per-image random affine (and elastic) warps, drawn uniformly in +-each magnitude; 0 turns one off."""

    rotate: float = Field(0.0, ge=0.0, le=180.0)
    """Random rotation of each training image, +- degrees."""
    shift: float = Field(0.0, ge=0.0, le=14.0)
    """Random shift, +- pixels in x and y independently."""
    scale: float = Field(0.0, ge=0.0, lt=1.0)
    """Random scale, +- fraction: 0.1 scales by 0.9 to 1.1."""
    shear: float = Field(0.0, ge=0.0, lt=90.0)
    """Random shear, +- degrees."""
    elastic_alpha: float = Field(0.0, ge=0.0, le=14.0)
    """Elastic warp: largest displacement of a lattice point, in pixels (0: off). The displacement is drawn on an elastic_grid x
    elastic_grid lattice and smoothly interpolated."""
    elastic_grid: int = Field(4, ge=2, le=28)
    """Elastic warp lattice size; fewer points give smoother, larger-scale warps."""

    @property
    def enabled(self) -> bool:
        """True if any distortion is on."""
        return any((self.rotate, self.shift, self.scale, self.shear, self.elastic_alpha))


class DataConfig(_Section):
    dataset: Literal["mnist", "fashion-mnist", "kmnist", "digits", "xor", "and", "or", "folder"] = "mnist"
    """MNIST-style image files (mnist, fashion-mnist, kmnist); scikit-learn's 8x8 digits (digits, no download); the four points of
    a truth table (xor, and, or); or your own images (folder: one subfolder per class under data.root)."""
    root: str | None = None
    """Folder that holds MNIST/raw/ (or FashionMNIST/raw/, KMNIST/raw/). null: $MNIST_DATA_DIR, else ./data, resolved when the
    data is loaded."""
    val_size: int | float = Field(5000, ge=0, le=50000)
    """Training examples held out to pick the best epoch (0: none, the last epoch is kept); the test set is never used for it.
    Left out, the dataset's own: 5000 for MNIST-style data, 144 for digits, 0 for a truth table (which refuses any other value). A
    float is a fraction of the training part (a folder's default: 0.1, stratified by class)."""
    test_root: str | None = None
    """folder datasets only: a separate folder of the same classes to test on (else a stratified 20% of data.root)."""
    skip_bad_files: bool = False
    """folder datasets only: go on without files that cannot be used, rather than refuse them."""
    normalize: bool = True
    """true: (x/scale - mean)/std with the dataset's constants (MNIST 0.1307, 0.3081); false: x/scale only. scale is the raw
    values' range: 255 for pixels, 16 for digits, 1 for truth tables."""
    augment: AugmentConfig = AugmentConfig()
    """Random distortions of training batches (never of validation or test); all off by default."""

    @model_validator(mode="before")
    @classmethod
    def _dataset_defaults(cls, data: Any) -> Any:
        name = data.get("dataset", "mnist") if isinstance(data, dict) else None
        if isinstance(name, str) and name in DATASETS and "val_size" not in data:  # anything else: the field check says so
            data = {**data, "val_size": DATASETS[name].default_val_size}
        return data

    @model_validator(mode="after")
    def _fits_the_dataset(self) -> DataConfig:
        table = DATASETS[self.dataset].kind == "table"
        if table and self.val_size:
            raise ValueError(
                f"val_size {self.val_size}: {self.dataset} trains on all four points, so validation is off; set 0 or leave it out"
            )
        if table and self.augment.enabled:
            raise ValueError(f"augment warps images; {self.dataset} is a truth table")
        if isinstance(self.val_size, float) and not 0 < self.val_size < 1:  # issue 21
            raise ValueError(f"val_size {self.val_size}: a fraction must be between 0 and 1 (or give a whole count)")
        if self.dataset == "folder" and not self.root:
            raise ValueError("dataset folder needs data.root: the folder with one subfolder of images per class")
        if self.test_root and self.dataset != "folder":
            raise ValueError(f"test_root is for dataset folder; {self.dataset} has its own test set")
        return self

    @field_validator("root", "test_root")
    @classmethod
    def _a_usable_path(cls, v: str | None) -> str | None:
        if v is not None and ("\0" in v or not v.strip()):
            raise ValueError("must be a folder path (not empty, no NUL characters)")
        return v


class ModelConfig(_Section):
    depth: int = Field(2, ge=0, le=64)
    """Hidden layers; 0 gives a linear softmax model (inputs straight to classes)."""
    width: int | list[int] = 512
    """Units of every hidden layer (an int, 1 to 65536), or a list with one width per layer: [512, 256]."""
    activation: Literal["relu", "gelu", "silu", "tanh", "sigmoid"] = "relu"
    """Activation after each hidden Linear."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout probability after each hidden activation."""
    norm: Literal["none", "batch", "layer"] = "none"
    """Normalisation after each hidden Linear."""
    init: Literal["default", "xavier", "kaiming", "uniform01"] = "default"
    """Weight initialisation: default is PyTorch's; xavier (for tanh, sigmoid) and kaiming (for relu) keep the signal's size from
    layer to layer; uniform01 draws weights uniformly in [0, 1), as the XOR tutorial does. All but default zero the biases."""

    @field_validator("width")
    @classmethod
    def _positive_widths(cls, v: int | list[int]) -> int | list[int]:
        if any(not 1 <= w <= 65536 for w in (v if isinstance(v, list) else [v])):
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
    # The defaults are the recommended recipe, configs/default.yaml.
    epochs: int = Field(4, ge=1, le=10000)
    """Passes over the training set."""
    batch_size: int = Field(256, ge=1, le=65536)
    """Training examples per optimizer step."""
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    """The optimizer; sgd uses train.momentum."""
    lr: float = Field(2e-3, gt=0.0, le=100.0)
    """Peak learning rate, on the batch's mean loss. Up to 100: a full-batch recipe written for gradients summed over N examples
    needs lr x N here."""
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """SGD momentum (sgd only)."""
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    """Weight decay (L2 for adam and sgd, decoupled for adamw)."""
    schedule: Literal["none", "cosine", "onecycle"] = "onecycle"
    """Learning-rate schedule: none; cosine (down to 0); onecycle (from lr/25 up to lr over the first 25% of steps, or
    warmup_epochs, then linearly down to 0)."""
    warmup_epochs: float = Field(0.0, ge=0.0)
    """Linear warm-up from 0 over this many epochs (fractions allowed)."""
    loss: Literal["cross_entropy", "nll", "mse"] = "cross_entropy"
    """Training loss: cross_entropy; nll (log_softmax then NLL, the same numbers by another road, as the 784-64x3 tutorial writes
    it); mse (softmax probabilities against one-hot targets, as the XOR tutorial trains). Validation and test losses are always
    cross-entropy."""
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    """Label smoothing for cross_entropy and nll; 0 when left out with loss: mse."""
    device: str = "auto"
    """auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps; a missing device is an error."""
    amp: bool = False
    """bf16 autocast on CUDA; ignored on the CPU."""
    threads: int | None = Field(None, ge=1, le=1024)
    """Intra-op CPU threads; null chooses from the work (one for small steps, else one per core). Results repeat bit for
    bit only with the same thread count."""
    compile: bool = False
    """torch.compile the model: costs compilation time up front."""
    eval_batch_size: int = Field(2048, ge=1, le=1 << 20)
    """Batch size for validation and test."""
    save_every_steps: int = Field(0, ge=0, le=10**9)
    """Also write last.pt every N optimizer steps, so a killed run loses at most N steps; 0: at epoch ends only."""
    on_nan: Literal["stop", "skip"] = "stop"
    """A NaN or inf loss: stop (name the step, keep the last good checkpoint, exit 2) or skip that batch's update."""
    log_every_epochs: int = Field(0, ge=0, le=10000)
    """Validate, record the epoch and write best.pt every N epochs and at the last; 0: every ceil(epochs/100) epochs, so every
    epoch for runs of up to 100 epochs."""
    save_every_epochs: int = Field(0, ge=0, le=10000)
    """Write last.pt every N epochs and at the last; 0: with every logged epoch."""
    health: bool = True
    """Record layer health while training: gradients, update sizes, dead and saturated units (on a fixed probe batch of 512
    validation images). It draws no random numbers, so it does not change the run."""
    health_probes_per_epoch: int = Field(4, ge=1, le=1000)
    """Health probes per logged epoch, evenly spaced, the last at the epoch's end (plus the run's first step)."""
    init_from: str | None = None
    """Start from this checkpoint's weights (fine-tuning): the same model settings; when its classes differ, the output layer
    starts afresh."""
    tensorboard: bool = True
    """Also write the run's record as a TensorBoard event file in the run folder (`tensorboard --logdir checkpoints`): losses,
    accuracies, layer health, weight and gradient histograms at the probes, the first layer as an image."""

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
    def _consistent(self) -> TrainConfig:
        if self.loss == "mse" and self.label_smoothing:
            raise ValueError(
                f"label_smoothing {self.label_smoothing}: applies to cross_entropy and nll; with loss mse set 0 or leave it out"
            )
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) exceeds epochs ({self.epochs})")
        return self

    @property
    def log_every(self) -> int:
        """Epochs between logged (validated, checkpointed) epochs."""
        return self.log_every_epochs or -(-self.epochs // 100)

    @property
    def save_every(self) -> int:
        """Epochs between writes of last.pt."""
        return self.save_every_epochs or self.log_every


class Config(_Section):
    seed: int = Field(0, ge=0, le=2**32 - 1)
    """Seeds the train/val split, initialisation, shuffling and dropout."""
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
    return Path(os.environ.get("MNIST_DATA_DIR") or "data")


def data_root(cfg: DataConfig) -> Path:
    """Where the dataset lives for this config; an explicit data.root that exists must be a folder."""
    if not cfg.root:
        return default_data_root()
    root = Path(cfg.root).expanduser()
    if root.exists() and not root.is_dir():
        raise ConfigError([f"data.root: {root} is not a folder (it should hold MNIST/raw/)"])
    return root


def recorded_data_root(cfg: DataConfig) -> Path:
    """A checkpoint's data folder where it exists on this machine, else this machine's default: a checkpoint made
    elsewhere names a folder of that machine."""
    return data_root(cfg) if cfg.root and Path(cfg.root).expanduser().is_dir() else default_data_root()


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


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML, every key written out."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
