"""`mnist predict` on images people actually have: real MNIST digits rendered as photos, drawings and scans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REAL_DATA, blob_png, encoded, invoke, require_real_data
from digit_styles import STYLES, large_black_on_white, read_mnist_test, write_style
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mnist_cli.inference.preprocess import preprocess_steps, to_mnist

STYLE_IMAGES = 250  # per style: 1,000 rendered digits in all, a few seconds of CPU


@pytest.fixture(scope="session")
def real_digits() -> tuple[np.ndarray, np.ndarray]:
    require_real_data()
    return read_mnist_test(REAL_DATA, STYLE_IMAGES)


def accuracy_on_originals(checkpoint: Path, digits: np.ndarray, labels: np.ndarray) -> float:
    from mnist_cli.inference.predict import classify
    from mnist_cli.inference.trained import load_trained

    trained = load_trained(checkpoint)
    probs = classify(trained.model, torch.from_numpy(digits), trained.normalization)
    return float((probs.argmax(1).numpy() == labels).mean())


@pytest.mark.slow
@pytest.mark.parametrize("style", list(STYLES))
def test_predict_reads_rendered_digits_as_well_as_the_originals(style, real_checkpoint, real_digits, tmp_path):
    digits, labels = real_digits
    paths = write_style(style, digits, tmp_path / "images", seed=1)
    r = invoke("predict", tmp_path / "images", "-m", real_checkpoint, "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["path"] for row in rows] == [str(p) for p in paths]
    predicted = np.array([row["prediction"] for row in rows])
    accuracy, baseline = float((predicted == labels).mean()), accuracy_on_originals(real_checkpoint, digits, labels)
    assert accuracy >= baseline - 0.02, f"{style}: {accuracy:.3f} on rendered digits vs {baseline:.3f} on the originals"


# (PIL mode, format, suffix): every suffix a folder lists
FORMATS = ["L PNG png", "RGB JPEG jpg", "RGB BMP bmp", "P GIF gif", "RGB WEBP webp", "L TIFF tif", "I;16 PNG png", "LA PNG png"]
FORMATS += ["RGBA TIFF tiff", "1 PNG png"]


@pytest.mark.slow
def test_every_format_and_mode_is_read_and_an_animated_gif_from_its_first_frame(real_checkpoint, real_digits, tmp_path):
    digits, labels = real_digits
    folder, big = tmp_path / "formats", Image.fromarray(digits[0]).resize((140, 140), Image.Resampling.BICUBIC)
    gray = Image.fromarray(255 - np.asarray(big))  # dark on light, 140 px
    special = {
        "I;16": Image.fromarray(np.asarray(gray).astype(np.uint16) * 257),
        "LA": Image.merge("LA", (gray, Image.new("L", gray.size, 255))),
    }
    folder.mkdir()
    for i, (mode, fmt, suffix) in enumerate(f.split() for f in FORMATS):
        special.get(mode, gray.convert(mode)).save(folder / f"{i}.{suffix}", fmt)
    frames = [Image.fromarray(255 - np.asarray(Image.fromarray(d).resize((112, 112)))).convert("P") for d in digits[:3]]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    r = invoke("predict", folder, "-m", real_checkpoint, "--json")
    assert r.exit_code == 0, r.output
    predicted = {row["path"]: row["prediction"] for row in json.loads(r.stdout)}
    assert predicted == {str(p): labels[0] for p in folder.iterdir()}


@pytest.mark.slow
def test_stdin_globs_and_folders_in_one_batch(real_checkpoint, real_digits, tmp_path):
    digits, labels = real_digits
    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(large_black_on_white(digits[i], np.random.default_rng(i))[0])
    (folder / "readme.txt").write_text("not listed: folders give their images only")
    stdin_image = large_black_on_white(digits[3], np.random.default_rng(3))[0]
    r = invoke("predict", folder, str(folder / "[12].png"), "-", "-m", real_checkpoint, "--json", input=stdin_image)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["path"] for row in rows] == [str(folder / f"{i}.png") for i in (0, 1, 2, 1, 2)] + ["<stdin>"]
    assert [row["prediction"] for row in rows] == [int(labels[i]) for i in (0, 1, 2, 1, 2, 3)]


@pytest.mark.slow
def test_show_draws_the_input_and_save_inputs_writes_it(real_checkpoint, real_digits, tmp_path):
    digits, labels = real_digits
    image = tmp_path / "seven.png"
    image.write_bytes(large_black_on_white(digits[0], np.random.default_rng(0))[0])
    r = invoke("predict", image, "-m", real_checkpoint, "--show", "--save-inputs", tmp_path / "seen")
    assert r.exit_code == 0, r.output
    art = r.stdout.splitlines()
    assert str(image) in art[0] and f"{labels[0]}  " in art[1]
    assert sum("█" in line for line in art) >= 8 and len(art) >= 30  # 28 rows of pixels and a frame
    saved = np.asarray(Image.open(tmp_path / "seen" / "seven.png"))
    assert saved.shape == (28, 28) and saved.dtype == np.uint8 and saved.max() == 255


def test_min_confidence_marks_uncertain_predictions(trained_checkpoint, tmp_path):
    blob_png(tmp_path / "blob.png")
    r = invoke("predict", tmp_path / "blob.png", "-m", trained_checkpoint, "--min-confidence", "1.0", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["uncertain"] is True
    r = invoke("predict", tmp_path / "blob.png", "-m", trained_checkpoint, "--min-confidence", "0")
    assert r.exit_code == 0, r.output
    assert "uncertain" not in r.stdout
    r = invoke("predict", tmp_path / "blob.png", "-m", trained_checkpoint, "--min-confidence", "1")
    assert r.stdout.rstrip().endswith("uncertain"), r.output


@pytest.fixture
def image_tree(tmp_path) -> Path:
    """image.png beside imgs/ (a.png, b.png, notes.txt, empty/, sub/c.png) and an empty folder."""
    for name in ("image.png", "imgs/a.png", "imgs/b.png", "imgs/sub/c.png"):
        blob_png(tmp_path / name)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / "empty").mkdir()
    (tmp_path / "nothing").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("im*", ["image.png", "imgs/a.png", "imgs/b.png"]),  # a matched folder gives its images, like a folder argument
        ("imgs/**", ["imgs/a.png", "imgs/b.png", "imgs/sub/c.png"]),  # each image once, folders and notes.txt skipped
        ("imgs/*", ["imgs/a.png", "imgs/b.png", "imgs/sub/c.png"]),  # as the shell would pass imgs/sub as a folder
        ("imgs/*/", ["imgs/sub/c.png"]),
    ],
)
def test_globs_that_match_folders_give_their_images(pattern, expected, image_tree, trained_checkpoint):
    r = invoke("predict", f"{image_tree}/{pattern}", "-m", trained_checkpoint, "--json")
    assert r.exit_code == 0, r.output
    assert [row["path"] for row in json.loads(r.stdout)] == [str(image_tree / p) for p in expected]
    assert r.stderr == ""


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("nothing", "no images in this folder"),
        ("imgs/empty", "no images in this folder"),
        ("imgs/*.txt", "no image files match"),
        ("imgs/empty/**", "no image files match"),
        ("", "no such file"),
    ],
)
def test_an_argument_that_gives_no_images_is_an_error_entry(arg, message, image_tree, trained_checkpoint):
    path = str(image_tree / arg) if arg else arg
    r = invoke("predict", path, image_tree / "image.png", "-m", trained_checkpoint, "--json")
    assert r.exit_code == 2, r.output
    rows = json.loads(r.stdout)
    assert rows[0] == {"path": path, "error": message} and rows[1]["path"] == str(image_tree / "image.png"), rows
    assert r.stderr.splitlines() == [f"error: {path}: {message}"]


def test_save_inputs_never_overwrites_a_file(image_tree, trained_checkpoint):
    imgs = image_tree / "imgs"
    before = {p: p.read_bytes() for p in imgs.rglob("*") if p.is_file()}
    blob_png(image_tree / "other" / "a.png")
    r = invoke("predict", imgs, image_tree / "other" / "a.png", "-m", trained_checkpoint, "--save-inputs", imgs)
    assert r.exit_code == 0, r.output
    assert {p: p.read_bytes() for p in before} == before  # the input images, saved into their own folder
    saved = sorted(p.name for p in imgs.glob("*.png") if p not in before)
    assert saved == ["a-2.png", "a-3.png", "b-2.png"]  # imgs/a.png and other/a.png both read, neither overwritten
    assert all(np.asarray(Image.open(imgs / name)).shape == (28, 28) for name in saved)


def test_a_failed_save_still_prints_the_predictions_and_exits_2(image_tree, trained_checkpoint):
    target = image_tree / "imgs" / "notes.txt"
    r = invoke("predict", image_tree / "image.png", image_tree / "nothing", "-m", trained_checkpoint, "--save-inputs", target)
    assert r.exit_code == 2, r.output
    [line] = r.stdout.splitlines()
    assert line.startswith(f"{image_tree / 'image.png'}\t"), r.stdout
    assert r.stderr.splitlines() == [
        f"error: {image_tree / 'nothing'}: no images in this folder",
        f"error: cannot save inputs to {target}: it is a file, not a folder",
    ]
    assert target.read_text() == "not an image"


def test_alpha_is_background_whatever_its_colour():
    """Transparent pixels hold red, white and black garbage; only the alpha-drawn stroke is ink."""
    rgba = np.zeros((100, 80, 4), dtype=np.uint8)
    rgba[..., :3] = np.random.default_rng(0).choice([0, 255], (100, 80, 3))
    rgba[20:80, 35:45, 3] = 255  # a vertical bar: a "1"
    rgba[20:80, 35:45, :3] = 0
    x = to_mnist(Image.fromarray(rgba))
    cols = np.flatnonzero(x.any(axis=0))
    assert x.any(axis=1).sum() == 20 and cols.size <= 6  # 20 px tall, thin, nothing else


@pytest.mark.parametrize("invert", ["auto", "yes"])
def test_a_small_dark_digit_is_fitted_and_centred_like_mnist(invert):
    page = np.full((400, 600), 235, dtype=np.uint8)
    page[30:90, 500:530] = 20  # a dark 60x30 block near the top-right corner of light paper
    steps = preprocess_steps(Image.fromarray(page), invert)
    assert steps.cropped.shape == (60, 30) and steps.scaled.shape == (20, 10)
    x = steps.mnist.astype(np.float64)
    cy = (x.sum(1) * np.arange(28)).sum() / x.sum()
    cx = (x.sum(0) * np.arange(28)).sum() / x.sum()
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_a_large_16_bit_scan_keeps_its_range():
    page = np.full((1200, 3000), 60000, dtype=np.uint16)  # bright paper, 16-bit, shrunk before processing
    page[300:900, 1400:1600] = 3000
    eight_bit = (page // 257).astype(np.uint8)
    assert np.array_equal(to_mnist(Image.fromarray(page)), to_mnist(Image.fromarray(eight_bit)))


def test_auto_polarity_agrees_with_the_forced_one():
    dark_on_light = np.full((100, 100), 240, dtype=np.uint8)
    dark_on_light[30:70, 45:55] = 10
    light_on_dark = 255 - dark_on_light
    assert np.array_equal(to_mnist(Image.fromarray(dark_on_light)), to_mnist(Image.fromarray(dark_on_light), "yes"))
    assert np.array_equal(to_mnist(Image.fromarray(light_on_dark)), to_mnist(Image.fromarray(light_on_dark), "no"))
    assert np.array_equal(to_mnist(Image.fromarray(light_on_dark)), to_mnist(Image.fromarray(dark_on_light)))


@pytest.fixture(scope="module")
def synthetic_model(trained_checkpoint):
    from mnist_cli.inference.trained import load_trained

    return load_trained(trained_checkpoint)


HEADERS = [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"\xff\xd8\xff", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBPVP8 "]
MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "I;16", "I", "F", "CMYK"]
WIDE = {"I;16": (257, np.uint16), "I": (65537, np.int32), "F": (1 / 255, np.float32)}  # modes made from "L" by scaling


@st.composite
def small_image_files(draw) -> bytes:
    """A small image in any mode and format, noise or mostly one colour with a few strokes (closer to a digit)."""
    mode, fmt = draw(st.sampled_from(MODES)), draw(st.sampled_from(["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    height, width = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    pixels = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    if draw(st.booleans()):
        pixels = np.where(rng.random((height, width, 1)) < 0.9, pixels[0, 0], pixels)
    img = Image.fromarray(pixels, "RGBA").convert("L" if mode in WIDE else mode)
    if mode in WIDE:
        img = Image.fromarray((np.asarray(img).astype(np.float64) * WIDE[mode][0]).astype(WIDE[mode][1]))
    try:
        return encoded(img, fmt)
    except (OSError, ValueError, KeyError):
        return b""  # this format cannot store this mode: an empty file


@settings(max_examples=270, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.tuples(st.sampled_from(HEADERS), st.binary(max_size=2000)).map(b"".join) | small_image_files())
def test_arbitrary_files_give_a_prediction_or_an_error(data, synthetic_model, tmp_path):
    from mnist_cli.inference.predict import Failure, predict_sources

    (tmp_path / "any.img").write_bytes(data)
    [r] = predict_sources([str(tmp_path / "any.img")], synthetic_model)
    if isinstance(r, Failure):
        assert r.error
    else:
        assert 0 <= r.prediction < 10 and 0 <= r.probability <= 1
        assert r.input.shape == (28, 28) and r.input.dtype == np.uint8


def test_a_fine_pen_on_a_big_page_keeps_mnist_thick_strokes():
    from PIL import ImageDraw

    page = Image.new("L", (1200, 1000), 250)
    ImageDraw.Draw(page).ellipse((300, 200, 700, 800), outline=0, width=2)  # a "0" 600 px tall in a 2 px pen
    x = to_mnist(page)
    rows = x[8:20]  # the ring's sides: two strokes per row, each should be 1.5+ px wide like MNIST's, not a faint line
    assert (rows > 128).sum(axis=1).mean() >= 3, x
