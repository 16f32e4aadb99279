"""Classifying people's digit images: read, preprocess like the training set, one batched forward pass, rank the classes."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from mnist_cli.data.datasets import Normalization
from mnist_cli.data.loader import to_inputs
from mnist_cli.errors import ImageError, SaveError
from mnist_cli.inference.image_files import decode, read_source
from mnist_cli.inference.preprocess import Invert, preparer_for

if TYPE_CHECKING:
    from mnist_cli.inference.trained import TrainedModel


@dataclass(frozen=True)
class Prediction:
    path: str
    prediction: int  # class index; for MNIST, the digit
    label: str
    probability: float
    top_k: list[tuple[int, str, float]]  # (class, label, probability), most likely first
    uncertain: bool = False  # probability below --min-confidence
    # What the network saw as a 0-255 picture: uint8 (28, 28), or (8, 8) for digits (its 0..16 counts x 255/16).
    input: np.ndarray | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        d = asdict(self)
        del d["input"]
        d["top_k"] = [{"class": c, "label": label, "probability": p} for c, label, p in self.top_k]
        return d


@dataclass(frozen=True)
class Failure:
    """A file that gave no prediction, and why."""

    path: str
    error: str

    def as_dict(self) -> dict:
        return asdict(self)


def predict_bytes(
    data: bytes, name: str, trained: TrainedModel, *, top_k: int = 3, min_confidence: float = 0.0, invert: Invert = "auto"
) -> tuple[Prediction, torch.Tensor]:
    """An image file's bytes -> (its Prediction, probabilities of every class (classes,)), as `predict_sources` makes them.

    The same reading (`decode`), preprocessing and forward pass as `mnist predict`; raises ImageError with predict's
    message when the bytes are not an image or hold no digit.
    """
    x = torch.from_numpy(preparer_for(trained.dataset.name)(decode(data), invert))  # uint8 (28, 28), (8, 8) for digits
    probs = classify(trained.model, x[None], trained.normalization)  # (1, classes)
    (p,) = predictions([name], probs, trained.classes, top_k, min_confidence)
    return replace(p, input=picture(x, trained.normalization).numpy()), probs[0]


@torch.inference_mode()
def classify(model: nn.Module, images: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """uint8 (N, *input) raw values -> class probabilities (N, classes) on the CPU, one forward pass on the model's device."""
    model.eval()
    images = images.to(next(model.parameters()).device)
    return torch.softmax(model(to_inputs(images, norm)).float(), dim=1).cpu()


def predictions(
    paths: list[str], probs: torch.Tensor, classes: list[str], top_k: int, min_confidence: float = 0.0
) -> list[Prediction]:
    """Pair each path with its most likely class and the top-k classes."""
    k = max(1, min(top_k, len(classes)))
    values, indices = probs.topk(k, dim=1)
    out = []
    for path, vals, idxs in zip(paths, values.tolist(), indices.tolist(), strict=True):
        top = [(i, classes[i], v) for i, v in zip(idxs, vals, strict=True)]
        out.append(Prediction(path, top[0][0], top[0][1], top[0][2], top, uncertain=top[0][2] < min_confidence))
    return out


def predict_sources(
    sources: list[str],
    trained: TrainedModel,
    *,
    top_k: int = 3,
    min_confidence: float = 0.0,
    invert: Invert = "auto",
    stdin: io.BufferedIOBase | None = None,
) -> list[Prediction | Failure]:
    """One result per source, in order: a Prediction, or a Failure naming the file and the reason."""
    prepare, norm = preparer_for(trained.dataset.name), trained.normalization
    inputs: dict[int, torch.Tensor] = {}
    results: list[Prediction | Failure | None] = [None] * len(sources)
    for i, source in enumerate(sources):
        try:
            inputs[i] = torch.from_numpy(prepare(read_source(source, stdin), invert))
        except ImageError as e:
            results[i] = Failure(display_name(source), str(e))
    if inputs:
        batch = torch.stack(list(inputs.values()))  # uint8 (N, side, side), all images in one forward pass
        probs = classify(trained.model, batch, norm)
        found = predictions([display_name(sources[i]) for i in inputs], probs, trained.classes, top_k, min_confidence)
        for i, p, x in zip(inputs, found, picture(batch, norm), strict=True):
            results[i] = replace(p, input=x.numpy())
    return [r for r in results if r is not None]


def picture(inputs: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """Raw inputs (0..norm.scale) as a 0-255 uint8 picture: MNIST's as they are, digits' 0..16 counts stretched."""
    return inputs if norm.scale == 255 else (inputs.float() * (255 / norm.scale)).round().to(torch.uint8)


def display_name(source: str) -> str:
    """How a source is named in results and errors: `-` is <stdin>."""
    return "<stdin>" if source == "-" else source


def save_inputs(results: list[Prediction | Failure], folder: Path) -> list[Path]:
    """Write each prediction's input picture (28x28, or 8x8 for digits) as a PNG named after its image; returns the files written.

    Never over an existing file (the input images may be in `folder`): seven.png, else seven-2.png, seven-3.png, ...
    """
    from PIL import Image

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SaveError(f"cannot save inputs to {folder}: it is a file, not a folder") from None
    except OSError as e:
        raise SaveError(f"cannot save inputs to {folder}: {e.strerror or e}") from None
    written: list[Path] = []
    for r in results:
        if not isinstance(r, Prediction) or r.input is None:
            continue
        path = None
        try:
            path, file = create_new(folder, "stdin" if r.path == "<stdin>" else Path(r.path).stem, ".png")
            with file:
                Image.fromarray(r.input).save(file, "PNG")
        except OSError as e:
            if path is not None:
                path.unlink(missing_ok=True)  # a partial PNG is worse than none
            raise SaveError(f"cannot save inputs to {path or folder}: {e.strerror or e}") from None
        written.append(path)
    return written


def create_new(folder: Path, stem: str, suffix: str) -> tuple[Path, io.BufferedWriter]:
    """Open the first of stem.png, stem-2.png, ... that does not exist, exclusively: no race overwrites a file."""
    path, n = folder / f"{stem}{suffix}", 1
    while True:
        try:
            return path, open(path, "xb")
        except FileExistsError:
            n += 1
            path = folder / f"{stem}-{n}{suffix}"
