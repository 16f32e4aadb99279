"""Classifying people's digit images: read, preprocess like the training set, one batched forward pass, rank the classes."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
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
    probabilities: list[float] = field(default_factory=list, repr=False, compare=False)  # every class's, in order

    def as_dict(self) -> dict:
        """predict --json's entry (without the input picture and every class's probability)."""
        d = {k: v for k, v in vars(self).items() if k not in ("input", "probabilities")}
        d["top_k"] = [{"class": c, "label": label, "probability": p} for c, label, p in self.top_k]
        return d


@dataclass(frozen=True)
class Failure:
    """A file that gave no prediction, and why."""

    path: str
    error: str

    def as_dict(self) -> dict:
        return asdict(self)


def predict_sources(
    sources: list[str],
    trained: TrainedModel,
    *,
    top_k: int = 3,
    min_confidence: float = 0.0,
    invert: Invert = "auto",
    stdin: io.BufferedIOBase | None = None,
    read: Callable[[str], Image.Image] | None = None,
) -> list[Prediction | Failure]:
    """One result per source, in order: a Prediction, or a Failure naming the file and the reason (`read(source)`
    gives a source's image; by default the file it names, or `stdin` for `-`)."""
    read = read or (lambda source: read_source(source, stdin))
    prepare, norm, classes = preparer_for(trained.dataset.name), trained.normalization, trained.classes
    inputs: dict[int, torch.Tensor] = {}
    results: list[Prediction | Failure | None] = [None] * len(sources)
    for i, source in enumerate(sources):
        try:
            inputs[i] = torch.from_numpy(prepare(read(source), invert))  # uint8 (28, 28), (8, 8) for digits
        except ImageError as e:
            results[i] = Failure(display_name(source), str(e))
    if inputs:
        batch = torch.stack(list(inputs.values()))  # all images in one forward pass
        probs = classify(trained.model, batch, norm)  # (N, classes)
        values, indices = probs.topk(max(1, min(top_k, len(classes))), dim=1)
        for i, vals, idxs, row, x in zip(inputs, values.tolist(), indices.tolist(), probs, picture(batch, norm), strict=True):
            top = [(c, classes[c], v) for c, v in zip(idxs, vals, strict=True)]
            name, (c, label, p) = display_name(sources[i]), top[0]
            results[i] = Prediction(name, c, label, p, top, p < min_confidence, x.numpy(), row.tolist())
    return [r for r in results if r is not None]


def predict_bytes(data: bytes, name: str, trained: TrainedModel, **options) -> Prediction:
    """An uploaded file's bytes -> its Prediction, exactly as `predict_sources` reads a file; raises ImageError."""
    (result,) = predict_sources([name], trained, read=lambda _: decode(data), **options)
    if isinstance(result, Failure):
        raise ImageError(result.error)
    return result


@torch.inference_mode()
def classify(model: nn.Module, images: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """uint8 (N, *input) raw values -> class probabilities (N, classes) on the CPU, one forward pass on the model's device."""
    model.eval()
    images = images.to(next(model.parameters()).device)
    return torch.softmax(model(to_inputs(images, norm)).float(), dim=1).cpu()


def picture(inputs: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """Raw inputs (0..norm.scale) as a 0-255 uint8 picture: MNIST's as they are, digits' 0..16 counts stretched."""
    return inputs if norm.scale == 255 else (inputs.float() * (255 / norm.scale)).round().to(torch.uint8)


def display_name(source: str) -> str:
    """How a source is named in results and errors: `-` is <stdin>."""
    return "<stdin>" if source == "-" else source


def save_inputs(results: list[Prediction | Failure], folder: Path) -> list[Path]:
    """Write each prediction's input picture (28x28, or 8x8 for digits) as a PNG named after its image, never over an
    existing file (the input images may be in `folder`): seven.png, else seven-2.png, ...; returns the files written."""
    folder, written = Path(folder), []
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reason = "it is a file, not a folder" if isinstance(e, FileExistsError) else e.strerror or e
        raise SaveError(f"cannot save inputs to {folder}: {reason}") from None
    for r in results:
        if isinstance(r, Prediction) and r.input is not None:
            path = folder
            try:
                path, file = create_new(folder, "stdin" if r.path == "<stdin>" else Path(r.path).stem, ".png")
                with file:
                    Image.fromarray(r.input).save(file, "PNG")
            except OSError as e:
                if path != folder:
                    path.unlink(missing_ok=True)  # a partial PNG is worse than none
                raise SaveError(f"cannot save inputs to {path}: {e.strerror or e}") from None
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
