"""Finding image files from command-line arguments and reading them safely into PIL images."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_cli.disk import A_FOLDER, NO_SUCH_FILE, os_reason, unreadable_file
from mnist_cli.errors import ImageError
from mnist_cli.inference.preprocess import WORKING_SIDE, shrink

STDIN = "-"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm"}
MAX_FILE_BYTES = 100 * 2**20  # 100 MiB: no digit photo needs more
MAX_IMAGE_PIXELS = 64_000_000  # larger images are refused as likely decompression bombs
MAX_DECODED_BYTES = 64 * 2**20  # a 64-megapixel scan in gray; colour and 16-bit images of that size are refused
FORMATS = ["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM"]  # the formats the docs list (PPM: PBM, PGM, PNM too)
GLOB_CHARS = set("*?[")
PLAIN_MODES = {"1", "L", "P", "RGB", "RGBA", "LA", "PA", "I", "F"}


def expand_arguments(args: list[str]) -> list[str]:
    """Files as given, folders as their images (sorted), globs as the images they match (sorted, each once); `-` for stdin.

    A folder a glob matches gives its images, like a folder argument; other files a glob matches are left out,
    as in a folder. An argument that gives no image is kept as given, so reading it reports why: a missing
    path, a glob that matches no image, a folder without images.
    """
    out: list[str] = []
    for arg in args:
        if arg == STDIN or os.path.isfile(arg):
            found = [arg]
        elif os.path.isdir(arg):  # False for "" (which Path would read as "."): an empty argument is a mistake
            found = folder_images(Path(arg))
        elif GLOB_CHARS & set(arg):
            found = _unique_files(image for match in glob_paths(arg) for image in match_images(match))
        else:
            found = []
        out += found or [arg]
    return out


def glob_paths(pattern: str) -> list[Path]:
    """What a glob matches. pathlib's `**` never descends into symlinked folders, so a link to a parent cannot make
    the walk loop (glob.glob's does, exponentially with two such links)."""
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if GLOB_CHARS & set(part))
    try:
        found = sorted(Path(*parts[:first]).glob(str(Path(*parts[first:]))))
    except (OSError, ValueError):
        return []
    return [p for p in found if os.path.isdir(p)] if pattern.endswith("/") else found  # `imgs/*/`: folders only


def _unique_files(paths) -> list[str]:
    """Sorted, each file once: two names for one file (a symlink and its target) count once."""
    first: dict[str, str] = {}
    for path in sorted(set(paths)):
        first.setdefault(os.path.realpath(path), path)
    return list(first.values())


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and os.path.isfile(path)


def folder_images(folder: Path) -> list[str]:
    """The image files directly inside `folder`, sorted; the folder itself when it cannot be read, so that
    reading it says why (and the rest of a batch goes on)."""
    try:
        found = sorted(str(p) for p in folder.iterdir() if is_image_file(p))
    except OSError:
        return [str(folder)]
    return found or ([str(folder)] if folder_problem(folder) else [])


def folder_problem(folder: Path) -> str | None:
    """Why the images in `folder` cannot be read, in words, or None."""
    try:
        entries = list(os.scandir(folder))
    except OSError as e:
        return f"cannot open this folder ({os_reason(e)})"
    for entry in entries:
        try:
            entry.stat()
        except OSError as e:
            return f"cannot open the files in this folder ({os_reason(e)})"
    return None


def match_images(match: Path) -> list[str]:
    """What a glob match stands for: a folder its images, an image file itself, anything else nothing."""
    if os.path.isdir(match):
        return folder_images(match)
    return [str(match)] if is_image_file(match) else []


def read_source(source: str, stdin: io.BufferedIOBase | None = None) -> Image.Image:
    """A path (or `-` with the bytes of `stdin`) -> a loaded PIL image, first frame; raises ImageError with the reason."""
    if source == STDIN:
        return decode(stdin.read(MAX_FILE_BYTES + 1) if stdin is not None else b"")
    if not source:
        raise ImageError(NO_SUCH_FILE)
    if GLOB_CHARS & set(source) and not os.path.lexists(source):
        raise ImageError("no image files match" if glob_paths(source) else "no files match")
    path = Path(source)
    problem = unreadable_file(path)
    if problem == A_FOLDER:
        raise ImageError(folder_problem(path) or "no images in this folder")
    if problem:
        raise ImageError(problem)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(f"file too large ({size / 2**20:.0f} MiB; at most {MAX_FILE_BYTES / 2**20:.0f} MiB)")
        data = path.read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read ({os_reason(e)})") from None
    return decode(data)


def decode(data: bytes) -> Image.Image:
    """Image bytes -> a loaded PIL image at most WORKING_SIDE px (first frame, EXIF rotation applied).

    A stranger's file: only the formats the docs list are tried (never Ghostscript's EPS, whatever the name), the
    pixels and the decoded bytes are bounded before anything is decoded, and every decoder error is an ImageError.
    """
    if not data:
        raise ImageError("empty file")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"too large (more than {MAX_FILE_BYTES / 2**20:.0f} MiB)")
    try:
        with warnings.catch_warnings():
            # Corrupt-EXIF and similar warnings are Pillow's business, not the user's; but Pillow only
            # warns between 1x and 2x its pixel limit, and we refuse everything above ours.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS or width < 1 or height < 1:
                raise ImageError(f"{width}x{height} pixels is too large (at most {MAX_IMAGE_PIXELS:,}; a decompression bomb?)")
            img.seek(0)
            img.draft(None, (width * WORKING_SIDE // max(img.size) + 1, height * WORKING_SIDE // max(img.size) + 1))
            # Bytes Pillow needs: 1 a pixel for 1-bit and gray, 2 for 16-bit, 4 for the rest (palettes become RGB(A)).
            need = img.width * img.height * (1 if img.mode in ("1", "L") else 2 if img.mode.startswith("I;16") else 4)
            if need > MAX_DECODED_BYTES:
                raise ImageError(
                    f"{img.width}x{img.height} {img.mode} is too large to decode "
                    f"({need / 2**20:.0f} MiB; at most {MAX_DECODED_BYTES / 2**20:.0f} MiB)"
                )
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            img = shrink(img)
            if img.mode in PLAIN_MODES or img.mode.startswith("I;16"):
                return img
            # The modes preprocessing does not read (CMYK, YCbCr, ...) are converted here, where failing is this file's.
            return img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"too large ({e})") from None
    except UnidentifiedImageError:
        raise ImageError("not a readable image (unknown format)") from None
    except Exception as e:  # a decoder's every failure on a stranger's bytes is that file's error
        raise ImageError(f"not a readable image ({e or type(e).__name__})") from None
