"""Write two folder datasets of other writers' digits for docs/handwriting.md: mine/ (20 per digit, to fine-tune on)
and held-out/ (100 per digit, never trained on).

    .venv/bin/python docs/make_handwriting_folders.py handwriting

The digits are scikit-learn's copy of UCI optdigits (43 writers, none of them MNIST's): 8x8 blocks of ink counts,
upscaled smoothly into 28x28 pictures of dark, thick strokes on white paper, as a phone photo of one's own digits
would look once cropped. Which images go where is fixed: each digit's first 20 are mine/, its next 100 held-out/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from sklearn.datasets import load_digits

MINE, HELD_OUT = 20, 100  # images per digit


def picture(counts: np.ndarray) -> Image.Image:
    """uint8 (8, 8) ink counts 0..16 -> a 28x28 greyscale picture, dark strokes on white."""
    ink = Image.fromarray((counts * (255 / 16)).astype(np.uint8)).resize((28, 28), Image.Resampling.BICUBIC)
    return ImageOps.invert(ink)


def main(out: Path) -> None:
    digits = load_digits()
    for part, first, count in (("mine", 0, MINE), ("held-out", MINE, HELD_OUT)):
        for d in range(10):
            folder = out / part / str(d)
            folder.mkdir(parents=True, exist_ok=True)
            for i in np.flatnonzero(digits.target == d)[first : first + count]:
                picture(digits.images[i]).save(folder / f"optdigits-{i:04d}.png")
        print(f"wrote {10 * count} images to {out / part}/0..9/")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "handwriting"))
