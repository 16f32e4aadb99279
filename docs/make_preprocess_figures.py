"""The pictures in the README's "Predicting your own images": each preprocessing step, and the example images.

    MNIST_DATA_DIR=/path/to/data PYTHONPATH=. python docs/make_preprocess_figures.py

Writes docs/images/step-*.png (one MNIST test digit photographed small, in blue ink, on cream paper with a
shadow, as a JPEG), docs/images/alpha-*.png (a drawing app's black strokes on a transparent background) and
docs/examples/* (the images the README runs `mnist predict` on, one of them a blank page).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from digit_styles import (  # noqa: E402
    black_strokes_on_transparent,
    coloured_ink_on_tinted_paper,
    enlarge,
    read_mnist_test,
    small_off_centre_on_big_page,
)

from mnist_cli.config import default_data_root  # noqa: E402
from mnist_cli.inference.preprocess import preprocess_steps  # noqa: E402

IMAGES, EXAMPLES = ROOT / "docs" / "images", ROOT / "docs" / "examples"
WIDTH = 224  # px of every picture in the README


def photo(digit: np.ndarray) -> Image.Image:
    """A 90 px digit in blue ink off-centre on a 480x360 cream page with a shadow on the left, JPEG-compressed."""
    rng = np.random.default_rng(0)
    h, w = 360, 480
    shade = 1 - 0.4 * np.linspace(1, 0, w, dtype=np.float32) ** 2  # (W,), darker to the left
    paper = np.array([245, 235, 205], dtype=np.float32) * shade[None, :, None]  # (H, W, 3)
    paper = paper + rng.normal(0, 5, (h, w, 3))
    ink = np.zeros((h, w, 1), dtype=np.float32)
    ink[60:150, 300:390, 0] = enlarge(digit, 90) / 255
    rgb = np.clip(paper * (1 - ink) + np.array([25, 40, 140]) * ink, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=75)
    return Image.open(buf)


def picture(array: np.ndarray) -> Image.Image:
    """A float [0, 1] or uint8 array as a WIDTH-wide picture: nearest-neighbour for small arrays, so pixels show."""
    a = array if array.dtype == np.uint8 else np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)
    img = Image.fromarray(a)
    scale = WIDTH / max(img.size)
    size = (round(img.width * scale), round(img.height * scale))
    return img.resize(size, Image.Resampling.NEAREST if max(img.size) <= 64 else Image.Resampling.LANCZOS)


def on_checkerboard(rgba: Image.Image) -> Image.Image:
    """Show transparency the way image editors do."""
    rgba = rgba.convert("RGBA")
    rows, cols = np.indices(rgba.size[::-1]) // 16  # (H, W) each, 16 px squares
    tiles = ((rows + cols) % 2).astype(np.uint8)
    board = Image.fromarray((200 + 40 * tiles).astype(np.uint8)).convert("RGBA")
    return Image.alpha_composite(board, rgba).convert("RGB")


def save(img: Image.Image, name: str) -> None:
    img.save(IMAGES / name)
    print(IMAGES / name)


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    digits, _ = read_mnist_test(default_data_root(), 20)

    img = photo(digits[11])  # a 6
    steps = preprocess_steps(img)
    save(picture(np.asarray(img.convert("RGB"))), "step-0-input.png")
    for i, name in enumerate(["gray", "ink", "cleaned", "cropped", "scaled", "mnist"], start=1):
        save(picture(getattr(steps, name)), f"step-{i}-{name}.png")
    save(picture(digits[11]), "step-original-mnist.png")

    drawn = Image.open(io.BytesIO(black_strokes_on_transparent(digits[0], np.random.default_rng(0))[0]))
    save(picture(np.asarray(on_checkerboard(drawn))), "alpha-0-input.png")
    save(picture(np.asarray(drawn.convert("L"))), "alpha-1-plain-gray.png")
    save(picture(preprocess_steps(drawn).gray), "alpha-2-flattened.png")

    rng = np.random.default_rng(7)
    for name, render, digit in [
        ("four", coloured_ink_on_tinted_paper, digits[4]),
        ("nine", small_off_centre_on_big_page, digits[7]),
        ("seven", black_strokes_on_transparent, digits[0]),
    ]:
        data, ext = render(digit, rng)
        (EXAMPLES / f"{name}.{ext}").write_bytes(data)
        print(EXAMPLES / f"{name}.{ext}")
    blank = np.clip(rng.normal(232, 5, (300, 400, 3)), 0, 255).astype(np.uint8)  # paper and nothing on it
    Image.fromarray(blank).save(EXAMPLES / "blank.jpg", quality=75)
    print(EXAMPLES / "blank.jpg")


if __name__ == "__main__":
    main()
