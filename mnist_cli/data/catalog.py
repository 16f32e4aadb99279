"""What each dataset is, in one place: the shape of one example, its raw value scale, classes and normalisation.

Model building, the checkpoint, eval, predict and the report read these facts from here; nothing else assumes
784 inputs or 10 classes. No torch here: the config imports it to give dataset-dependent defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from mnist_cli.errors import DataError

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
IMAGE_SIDE = 28  # pixels: MNIST-style files, folder datasets and `mnist predict` all make 28x28 images
DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# The truth tables: the four (a, b) points in this order, and each table's output for them.
TABLE_INPUTS = ((0, 0), (0, 1), (1, 0), (1, 1))
TABLES = {"xor": (0, 1, 1, 0), "and": (0, 0, 0, 1), "or": (0, 1, 1, 1)}


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset's facts. Raw examples are uint8 arrays of `input_shape` minus its channel, valued 0..`scale`."""

    name: str
    kind: Literal["images", "table"]
    input_shape: tuple[int, ...]  # one example as the model's input: (1, 28, 28), (1, 8, 8), (2,)
    scale: float  # raw values run 0..scale: inputs are raw / scale (then normalised)
    classes: tuple[str, ...] | None  # None: a folder dataset's, its subfolders
    # Normalisation constants of raw / scale; None: computed from the dataset's training part when it is loaded.
    mean: float | None
    std: float | None
    default_val_size: int | float  # training examples held out for validation unless data.val_size says otherwise
    torchvision_name: str | None = None  # the torchvision class whose files (MNIST/raw/...) and mirrors it has

    @property
    def in_features(self) -> int:
        """Inputs of the model's first layer."""
        return math.prod(self.input_shape)

    @property
    def image_side(self) -> int | None:
        """The side of a square image dataset, None for a table."""
        return self.input_shape[-1] if self.kind == "images" else None


def _mnist_like(name: str, torchvision: str, mean: float, std: float, classes: tuple[str, ...]) -> DatasetInfo:
    return DatasetInfo(name, "images", (1, IMAGE_SIDE, IMAGE_SIDE), 255.0, classes, mean, std, 5000, torchvision)


def _table(name: str) -> DatasetInfo:
    # 0/1 inputs as the tutorials feed them: no normalisation; all four points train, no validation.
    return DatasetInfo(name, "table", (2,), 1.0, ("0", "1"), 0.0, 1.0, 0)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": _mnist_like("mnist", "MNIST", MNIST_MEAN, MNIST_STD, DIGIT_CLASSES),
    "fashion-mnist": _mnist_like("fashion-mnist", "FashionMNIST", 0.2860, 0.3530, FASHION_CLASSES),
    "kmnist": _mnist_like("kmnist", "KMNIST", 0.1918, 0.3483, ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
    # scikit-learn's 8x8 digits: 4x4 blocks of 32x32 bitmaps, each the count of its inked pixels (0..16).
    # 144 validation digits: about 10% of the 1,437 in the 80% training part.
    "digits": DatasetInfo("digits", "images", (1, 8, 8), 16.0, DIGIT_CLASSES, None, None, 144),
    **{name: _table(name) for name in TABLES},
    # One's own images (data/folder.py): 28x28 as `mnist predict` prepares them; 10% of the training part validates.
    "folder": DatasetInfo("folder", "images", (1, IMAGE_SIDE, IMAGE_SIDE), 255.0, None, None, None, 0.1),
}


def dataset_info(name: str) -> DatasetInfo:
    """The facts of a dataset by its config name."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None
