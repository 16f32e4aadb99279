"""A person's digit image -> a 28x28 input made the way MNIST was: light ink on black, fitted in 20x20, centred by mass;
or an 8x8 input of 0..16 counts made the way scikit-learn's digits were (`to_digits`).

Pure functions on PIL images and numpy arrays; each step is its own function so the README can show it.
Arrays called `ink` are float32 (H, W) in [0, 1]: 0 is background, 1 is full ink.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from mnist_cli.data.datasets import IMAGE_SIDE
from mnist_cli.errors import ImageError

Invert = Literal["auto", "yes", "no"]
DIGIT_BOX = 20  # MNIST fits each digit's longer side into 20 px, then pads to 28
WORKING_SIDE = 2048  # larger images are shrunk first: still >= 20 px for a digit 1/100 of the page
MIN_CONTRAST = 0.1  # ink must differ from the paper by 10% of the full range, else the page is blank
INK_THRESHOLD = 0.25  # after stretching, weaker ink (paper texture, JPEG noise, shadows) is background
PAPER_SIDE = 64  # px; the paper's shading is estimated on a copy this small
MIN_STROKE = 1.5  # px in the 20 px box; thinner pen strokes are thickened first, MNIST strokes are ~2-3 px
# scikit-learn's digits (UCI optdigits): a 32x32 bitmap, its "on" pixels counted in each 4x4 block -> 8x8 of 0..16.
DIGITS_BITMAP, DIGITS_BLOCK = 32, 4
DIGITS_MIN_STROKE = 3.0  # px in the 32 px bitmap: its pen strokes cover most of a 4x4 block


@dataclass(frozen=True)
class Steps:
    """Every intermediate image of `to_mnist`, for pictures and debugging."""

    gray: np.ndarray  # float32 (H, W) in [0, 1], as read (alpha already flattened)
    ink: np.ndarray  # float32 (H, W): polarity fixed, light ink on dark
    cleaned: np.ndarray  # float32 (H, W): background removed, thresholded
    cropped: np.ndarray  # float32 (h, w): the ink's bounding box
    scaled: np.ndarray  # float32 (h', w'), longer side 20
    mnist: np.ndarray  # uint8 (28, 28): centre of mass at the centre


def to_mnist(img: Image.Image, invert: Invert = "auto") -> np.ndarray:
    """A PIL image -> uint8 (28, 28), light digit on black like MNIST; raises ImageError if there is no ink."""
    return preprocess_steps(img, invert).mnist


def preprocess_steps(img: Image.Image, invert: Invert = "auto") -> Steps:
    """Run every preprocessing step and keep each result."""
    gray = to_gray(shrink(img))
    ink = to_ink(gray, invert)
    cleaned = clean(ink)
    cropped = crop_to_ink(cleaned)
    scaled = fit_box(cropped)
    return Steps(gray, ink, cleaned, cropped, scaled, center_by_mass(scaled))


def shrink(img: Image.Image) -> Image.Image:
    """Cap the longer side at WORKING_SIDE (antialiased) so huge scans cost little."""
    scale = WORKING_SIDE / max(img.size)
    if scale >= 1:
        return img
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    keep = img.mode in ("L", "LA", "RGB", "RGBA", "F", "I") or img.mode.startswith("I;16")  # resizable as they are
    mode = img.mode if keep else "L" if img.mode == "1" else "RGBA" if has_alpha(img) else "RGB"
    return img.convert(mode).resize(size, Image.Resampling.BOX)


def has_alpha(img: Image.Image) -> bool:
    """True if the image carries transparency (an alpha channel or a transparent palette entry)."""
    return img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info


def to_gray(img: Image.Image) -> np.ndarray:
    """Any mode -> float32 (H, W) in [0, 1]; transparent pixels become background, whatever their colour."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(img, dtype=np.float32)
        if not np.isfinite(values).all():  # float TIFFs can hold NaN or inf: no brightness to read
            raise ImageError("the image has invalid pixel values (NaN or infinity)")
        # 16-bit and 32-bit files: scale by their range, not by 255 (Pillow's convert("L") would clip).
        top = 65535.0 if img.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        return np.clip(values / top, 0, 1)
    if not has_alpha(img):
        return np.asarray(img.convert("L"), dtype=np.float32) / 255
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255
    alpha = rgba[..., 3]
    gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"
    if alpha.min() > 0.98:
        return gray
    # The background is whatever contrasts with the opaque strokes: black strokes get white paper, white ones black.
    strokes = float((gray * alpha).sum() / max(alpha.sum(), 1e-6))
    background = 1.0 if strokes < 0.5 else 0.0
    return alpha * gray + (1 - alpha) * background


def to_ink(gray: np.ndarray, invert: Invert = "auto") -> np.ndarray:
    """Light ink on dark: invert dark-on-light images, judged by whether the border is nearer white or black."""
    if invert == "auto":
        invert = "yes" if border_is_light(gray) else "no"
    return 1 - gray if invert == "yes" else gray


def border_is_light(gray: np.ndarray) -> bool:
    """True if the paper (the outer 5% of the image) is nearer the lightest pixel than the darkest."""
    h, w = gray.shape
    b = max(1, min(h, w) // 20)
    border = np.concatenate([gray[:b].ravel(), gray[-b:].ravel(), gray[:, :b].ravel(), gray[:, -b:].ravel()])
    return float(np.median(border)) > (float(gray.min()) + float(gray.max())) / 2


def clean(ink: np.ndarray) -> np.ndarray:
    """Remove the paper: subtract its local level, drop specks, stretch the ink to 1, zero what is below INK_THRESHOLD."""
    # A 3x3 median removes single-pixel specks and JPEG ringing without thinning 2+ px strokes.
    smooth = median3(ink.astype(np.float32))
    paper = paper_level(smooth)
    lifted = smooth - paper
    if float(lifted.max()) < MIN_CONTRAST:
        raise ImageError("no digit found (the image is blank or has too little contrast)")
    # Relative to the headroom above the paper, so ink in a shadow counts as much as ink in the light.
    lifted = lifted / np.maximum(1 - paper, 0.2)
    stretched = np.clip(lifted / float(lifted.max()), 0, 1)
    return np.where(stretched >= INK_THRESHOLD, stretched, 0).astype(np.float32)


def median3(x: np.ndarray) -> np.ndarray:
    """The 3x3 median, edges repeated: exactly scipy's median_filter(size=3, mode="nearest"), in 20 whole-array
    min/max operations instead of a selection per pixel (which was the costliest step of a served request)."""
    p = np.pad(x, 1, mode="edge")
    a, b, c = p[:-2], p[1:-1], p[2:]  # each pixel's column of 3: the row above, its own, the row below
    low, mid, high = np.minimum(np.minimum(a, b), c), median_of(a, b, c), np.maximum(np.maximum(a, b), c)
    # The median of 9 is the median of: the largest column minimum, the median column median, the smallest maximum.
    lows, mids, highs = ((v[:, :-2], v[:, 1:-1], v[:, 2:]) for v in (low, mid, high))
    return median_of(np.maximum(np.maximum(*lows[:2]), lows[2]), median_of(*mids), np.minimum(np.minimum(*highs[:2]), highs[2]))


def median_of(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def paper_level(ink: np.ndarray) -> np.ndarray:
    """The paper's ink level at each pixel, float32 (H, W): a grey opening a quarter of the image wide removes every
    stroke and keeps the slow shading (shadows, tints); on a copy at most PAPER_SIDE px wide, blurred, scaled back."""
    h, w = ink.shape
    scale = min(1.0, PAPER_SIDE / max(h, w))
    # 8-bit pixels: 1/255 steps are fine for a level that is blurred anyway.
    small = Image.fromarray(np.round(ink * 255).astype(np.uint8))
    small = small.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    k = max(3, max(small.size) // 4 | 1)  # odd window, in small-image px
    opened = ndimage.grey_opening(np.asarray(small), size=k, mode="nearest")
    paper = Image.fromarray(opened).filter(ImageFilter.BoxBlur(k // 2))
    return np.asarray(paper.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle holding every ink pixel."""
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise ImageError("no digit found")
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in px, as 2 * area / perimeter of the inked region."""
    on = ink > 0
    padded = np.pad(on, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = int((on & ~interior).sum())
    return 2 * int(on.sum()) / max(edge, 1)


def fit_box(ink: np.ndarray, box: int = DIGIT_BOX, min_stroke: float = MIN_STROKE) -> np.ndarray:
    """Scale so the longer side is `box` px keeping the aspect ratio, antialiased; thin pen strokes thickened first."""
    h, w = ink.shape
    scale = box / max(h, w)
    missing = min_stroke / scale - stroke_width(ink)  # source px a stroke lacks to reach MIN_STROKE after scaling
    if missing > 1:
        grow = 2 * round(missing / 2) + 1  # odd, so the stroke grows evenly on both sides
        # A square dilation; scipy's is separable and O(pixels) whatever `grow` (PIL's MaxFilter is O(pixels x grow^2)).
        ink = ndimage.maximum_filter(np.pad(ink, grow // 2), size=grow, mode="constant")
        h, w = ink.shape
        scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    scaled = np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.LANCZOS))
    scaled = np.clip(scaled, 0, None)
    return (scaled / max(float(scaled.max()), 1e-6)).astype(np.float32)


def center_by_mass(ink: np.ndarray, side: int = IMAGE_SIDE) -> np.ndarray:
    """Paste into a side x side black field with the ink's centre of mass at the centre -> uint8 (side, side)."""
    h, w = ink.shape
    total = float(ink.sum())
    if total <= 0:
        raise ImageError("no digit found")
    cy = float((ink.sum(axis=1) * np.arange(h)).sum()) / total
    cx = float((ink.sum(axis=0) * np.arange(w)).sum()) / total
    centre = side / 2  # MNIST test digits: mean centre of mass at (14.0, 14.0) in pixel indices
    # Integer shifts like MNIST's, clamped so no ink falls off the field.
    top = int(np.clip(round(centre - cy), 0, side - h))
    left = int(np.clip(round(centre - cx), 0, side - w))
    out = np.zeros((side, side), dtype=np.float32)
    out[top : top + h, left : left + w] = ink
    return np.round(out * 255).astype(np.uint8)


def to_digits(img: Image.Image, invert: Invert = "auto") -> np.ndarray:
    """A PIL image -> uint8 (8, 8) of 0..16 as scikit-learn's digits: ink fitted into 32x32, 4x4 blocks counted."""
    ink = clean(to_ink(to_gray(shrink(img)), invert))
    scaled = fit_box(crop_to_ink(ink), DIGITS_BITMAP, DIGITS_MIN_STROKE)
    return bitmap_counts(center_by_mass(scaled, DIGITS_BITMAP))


def bitmap_counts(picture: np.ndarray, block: int = DIGITS_BLOCK) -> np.ndarray:
    """uint8 (S, S) grey picture -> uint8 (S/block, S/block): pixels at least half inked, counted per block."""
    on = (picture >= 128).astype(np.uint8)
    side = picture.shape[0] // block
    return on.reshape(side, block, side, block).sum(axis=(1, 3)).astype(np.uint8)


Preparer = Callable[[Image.Image, Invert], np.ndarray]
PREPARERS: dict[str, Preparer] = {"digits": to_digits}


def preparer_for(dataset: str) -> Preparer:
    """How a person's image becomes an input of `dataset`: 8x8 counts for digits, else MNIST's 28x28."""
    return PREPARERS.get(dataset, to_mnist)
