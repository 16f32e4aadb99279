"""Real MNIST test digits rendered the way people's own images look, for the predict tests and the README evidence."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
from PIL import Image


def read_mnist_test(root: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n test images uint8 (n, 28, 28) and labels (n,) from root/MNIST/raw/t10k-*.gz."""
    raw = Path(root) / "MNIST" / "raw"
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    with gzip.open(raw / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)[:n]
    return images.copy(), labels.astype(np.int64)


def enlarge(digit: np.ndarray, side: int) -> np.ndarray:
    """uint8 (28, 28) -> uint8 (side, side), smoothly, like a digit written large."""
    return np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC))


def large_black_on_white(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """Dark ink on white paper, a few hundred pixels wide, PNG."""
    return _encode(Image.fromarray(255 - enlarge(digit, int(rng.integers(200, 400)))), "PNG"), "png"


def coloured_ink_on_tinted_paper(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """Blue/red/green ink on cream or grey paper with texture noise, saved as a JPEG at quality 75."""
    ink = enlarge(digit, int(rng.integers(150, 300))).astype(np.float32)[..., None] / 255  # (S, S, 1)
    paper = np.array([rng.integers(200, 250), rng.integers(190, 245), rng.integers(160, 230)], dtype=np.float32)
    colour = np.array([[20, 40, 150], [150, 20, 30], [20, 90, 40], [40, 40, 40]][rng.integers(4)], dtype=np.float32)
    page = paper + rng.normal(0, 6, (*ink.shape[:2], 3)).astype(np.float32)  # paper texture
    rgb = np.clip(page * (1 - ink) + colour * ink, 0, 255).astype(np.uint8)
    return _encode(Image.fromarray(rgb), "JPEG", quality=75), "jpg"


def photo_with_a_shadow(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """Dark ink on white paper darkened by a shadow across one side (to ~55% brightness), JPEG at quality 85."""
    side = int(rng.integers(200, 360))
    ramp = np.linspace(0, 1, side, dtype=np.float32) ** 2  # (S,), shade grows towards one edge
    shade = 1 - 0.45 * (ramp[:, None] if rng.random() < 0.5 else ramp[None, :])
    shade = shade if rng.random() < 0.5 else shade[::-1, ::-1]
    paper = 240 * shade  # (S, S)
    ink = enlarge(digit, side).astype(np.float32) / 255
    gray = np.clip(paper * (1 - ink) + 25 * ink + rng.normal(0, 3, paper.shape), 0, 255).astype(np.uint8)
    return _encode(Image.fromarray(gray), "JPEG", quality=85), "jpg"


def small_off_centre_on_big_page(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """A 40-70 px digit somewhere near an edge of an 800x600 white page, PNG."""
    side = int(rng.integers(40, 70))
    page = np.full((600, 800), 245, dtype=np.uint8)
    top, left = int(rng.integers(0, 600 - side)), int(rng.integers(0, 200))
    if rng.random() < 0.5:
        left = 800 - side - left
    page[top : top + side, left : left + side] = 245 - (enlarge(digit, side).astype(np.int32) * 245 // 255)
    return _encode(Image.fromarray(page), "PNG"), "png"


def black_strokes_on_transparent(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """Black RGB everywhere, the digit only in alpha, as drawing apps export; a plain gray conversion sees all black."""
    alpha = enlarge(digit, int(rng.integers(200, 400)))
    rgba = np.zeros((*alpha.shape, 4), dtype=np.uint8)
    rgba[..., 3] = alpha
    return _encode(Image.fromarray(rgba), "PNG"), "png"


STYLES = {
    "large black on white (PNG)": large_black_on_white,
    "coloured ink on tinted paper (JPEG)": coloured_ink_on_tinted_paper,
    "small, off-centre on a big page (PNG)": small_off_centre_on_big_page,
    "black strokes on transparent (RGBA PNG)": black_strokes_on_transparent,
    "photo with a shadow (JPEG)": photo_with_a_shadow,
}


def write_style(style: str, digits: np.ndarray, folder: Path, seed: int = 0) -> list[Path]:
    """Render every digit in `style` into `folder`; returns the files in digit order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, digit in enumerate(digits):
        data, ext = STYLES[style](digit, rng)
        path = folder / f"{i:04d}.{ext}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _encode(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()
