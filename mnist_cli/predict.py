"""Reading a person's image into a 28x28 MNIST-like input, and classifying a batch of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from mnist_cli.data import IMAGE_SIDE, Normalization, to_inputs
from mnist_cli.errors import ImageError

MAX_IMAGE_PIXELS = 64_000_000  # larger images are refused as likely decompression bombs


@dataclass(frozen=True)
class Prediction:
    path: str
    prediction: int  # class index; for MNIST, the digit
    label: str
    probability: float
    top_k: list[tuple[int, str, float]]  # (class, label, probability), most likely first

    def as_dict(self) -> dict:
        d = asdict(self)
        d["top_k"] = [{"class": c, "label": label, "probability": p} for c, label, p in self.top_k]
        return d


def load_image(path: Path) -> torch.Tensor:
    """An image file -> uint8 (28, 28), light digit on dark like MNIST."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                # Transparent pixels are background: put the image on white before deciding polarity.
                rgba = img.convert("RGBA")
                canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(canvas, rgba)
            gray = img.convert("L").resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: not a readable image ({e})") from None
    x = torch.frombuffer(bytearray(gray.tobytes()), dtype=torch.uint8).view(IMAGE_SIDE, IMAGE_SIDE)
    border = torch.cat([x[0], x[-1], x[:, 0], x[:, -1]]).float().mean()
    return 255 - x if border > 127 else x


@torch.inference_mode()
def classify(model: nn.Module, images: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """uint8 (N, 28, 28) -> class probabilities (N, classes), one forward pass."""
    return torch.softmax(model(to_inputs(images, norm)), dim=1)


def predictions(paths: list[str], probs: torch.Tensor, classes: list[str], top_k: int) -> list[Prediction]:
    """Pair each path with its most likely class and the top-k classes."""
    k = max(1, min(top_k, len(classes)))
    values, indices = probs.topk(k, dim=1)
    out = []
    for path, vals, idxs in zip(paths, values.tolist(), indices.tolist(), strict=True):
        top = [(i, classes[i], v) for i, v in zip(idxs, vals, strict=True)]
        out.append(Prediction(path, top[0][0], top[0][1], top[0][2], top))
    return out
