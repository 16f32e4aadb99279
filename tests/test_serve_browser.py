"""`mnist serve` in a real browser: Debian's Chromium, driven by Playwright, draws real MNIST digits as pointer strokes.

Runs the real `python -m mnist_cli serve --port 0` on 127.0.0.1 with a checkpoint trained on the real MNIST.
Without Chromium these tests skip on a developer machine and fail under CI (`.ci/run` installs it).
"""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_DATA, chromium, encoded, invoke
from digit_strokes import place, strokes
from digit_styles import read_mnist_test
from PIL import Image
from server_process import interrupt, start_serve

pytestmark = pytest.mark.slow
CANVAS = 280  # px, the page's canvas
DRAWN = 24  # real test digits drawn; the gate is 90% read right


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as p:
        # Without Chromium's newest guard (a permission prompt before a site reaches loopback), as in Firefox, Safari and
        # older Chromium: the server must refuse foreign pages itself.
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-features=LocalNetworkAccessChecks"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def served(browser, real_checkpoint, tmp_path_factory):
    """(url, checkpoint, collect folder) of a real `mnist serve --port 0 --collect FOLDER` subprocess; Ctrl-C at the end
    must stop it with exit 0."""
    collect = tmp_path_factory.mktemp("collect")
    proc, url = start_serve("-m", real_checkpoint, "--collect", collect)
    try:
        yield url, real_checkpoint, collect
    finally:
        code, err = interrupt(proc)
    assert code == 0, err
    assert "Traceback" not in err, err
    assert err.rstrip().endswith("stopped"), err


@pytest.fixture
def blank(browser):
    """A new browser tab, closed after the test."""
    p = browser.new_page(viewport={"width": 900, "height": 700})
    yield p
    p.close()


@pytest.fixture
def page(blank, served):
    """The served page, its model loaded."""
    blank.goto(served[0])
    blank.wait_for_function("!document.getElementById('model').textContent.startsWith('loading')")
    return blank


def draw(page, stroke_list) -> None:
    """Each stroke as a pointer press, moves through its points, release; then wait for the page's answer."""
    box = page.evaluate(
        "() => { const c = document.getElementById('canvas'), r = c.getBoundingClientRect();"
        " return {x: r.left + c.clientLeft, y: r.top + c.clientTop}; }"
    )
    for stroke in stroke_list:
        (x0, y0), rest = stroke[0], stroke[1:]
        page.mouse.move(box["x"] + x0, box["y"] + y0)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.up()
    settle(page)


def settle(page) -> None:
    page.wait_for_function("document.body.dataset.busy === '0'", timeout=10_000)


def shown(page) -> str:
    return page.inner_text("#prediction")


def clear(page) -> None:
    page.click("#clear")
    settle(page)


def placement(i: int, rng: np.random.Generator) -> tuple[str, float, tuple[float, float]]:
    """(kind, px per MNIST pixel, offset): every 3rd digit small in a corner, every 3rd off-centre, the rest large."""
    if i % 3 == 0:  # 140 px of 28 MNIST pixels (~100 px of digit) in the 280 px canvas, pushed towards a corner
        return "small", 5.0, (float(rng.choice([7.0, 133.0])), float(rng.choice([7.0, 133.0])))
    if i % 3 == 1:  # 224 px (~160 px of digit), against a side, anywhere along it
        return "off-centre", 8.0, (float(rng.choice([0.0, 56.0])), float(rng.uniform(0, 56)))
    return "large", 10.0, (0.0, 0.0)


@pytest.fixture(scope="module")
def test_digits():
    return read_mnist_test(REAL_DATA, DRAWN)


def test_drawn_mnist_digits_are_read_right(page, test_digits):
    digits, labels = test_digits
    rng = np.random.default_rng(0)
    rows = []
    for i, (digit, label) in enumerate(zip(digits, labels, strict=True)):
        kind, scale, offset = placement(i, rng)
        draw(page, place(strokes(digit), scale, offset))
        rows.append((kind, int(label), shown(page)))
        clear(page)
    wrong = [(i, k, lab, got) for i, (k, lab, got) in enumerate(rows) if str(lab) != got]
    total, missed = Counter(k for k, _, _ in rows), Counter(k for _, k, _, _ in wrong)
    summary = ", ".join(f"{k} {n - missed[k]}/{n}" for k, n in total.items())
    assert len(wrong) <= 0.1 * len(rows), f"{summary} right; wrong (index, kind, label, shown): {wrong}"


def test_a_blank_canvas_says_draw_a_digit_and_clear_empties_the_canvas_and_the_answer(page, test_digits):
    assert shown(page) == "draw a digit"
    assert page.get_attribute("#result", "data-status") == "empty"
    page.wait_for_timeout(300)  # longer than the debounce: nothing is predicted for an empty canvas
    assert shown(page) == "draw a digit"
    assert page.get_attribute("#input", "src") is None
    digits, labels = test_digits
    draw(page, place(strokes(digits[0]), 10.0, (0.0, 0.0)))
    assert shown(page) == str(labels[0])
    assert page.get_attribute("#input", "src")
    top_bar = page.evaluate(
        "() => { const li = document.querySelector('#bars li.top');"
        " return li.querySelector('.fill').offsetWidth / li.querySelector('.track').offsetWidth; }"
    )
    assert top_bar == pytest.approx(float(page.inner_text("#confidence").split("%")[0]) / 100, abs=0.02)
    clear(page)
    assert shown(page) == "draw a digit"
    assert page.get_attribute("#input", "src") is None
    ink = page.evaluate(
        "() => { const c = document.getElementById('canvas');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 250) n++; return n; }"
    )
    assert ink == 0


def test_an_uploaded_image_is_read(page, test_digits, tmp_path):
    digits, labels = test_digits
    path = tmp_path / "upload.png"
    Image.fromarray(255 - np.asarray(Image.fromarray(digits[1]).resize((200, 200)))).save(path)
    page.set_input_files("#upload", str(path))
    settle(page)
    assert shown(page) == str(labels[1])
    page.set_input_files("#upload", str(Path(__file__)))  # not an image: the page says what the server said
    settle(page)
    assert shown(page) == "no prediction"
    assert page.inner_text("#message") == "not a readable image (unknown format)"


RECORD_SENT = """
// Keep a copy of every image the page posts, and the answer to it (the browser's request log drops blob bodies).
window.sent = [];
const originalFetch = window.fetch;
window.fetch = async (url, options) => {
  const record = {};
  window.sent.push(record);
  const file = options && options.body instanceof FormData ? options.body.get("image") : null;
  if (file) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    let text = "";
    for (const b of bytes) text += String.fromCharCode(b);
    record.image = btoa(text);
  }
  const response = await originalFetch(url, options);
  record.answer = await response.clone().json();
  return response;
};
"""


def test_what_the_page_sends_gets_the_same_answer_from_mnist_predict(page, served, test_digits, tmp_path):
    _, checkpoint, _ = served
    digits, _ = test_digits
    page.add_init_script(RECORD_SENT)
    page.reload()
    draw(page, place(strokes(digits[2]), 6.0, (120.0, 20.0)))  # small, top right: the preprocessing has work to do
    last = page.evaluate("window.sent[window.sent.length - 1]")
    (tmp_path / "canvas.png").write_bytes(base64.b64decode(last["image"]))
    answer = last["answer"]
    r = invoke("predict", tmp_path / "canvas.png", "-m", checkpoint, "--json", "--save-inputs", tmp_path / "in")
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    assert row["prediction"] == answer["prediction"] == int(page.get_attribute("#result", "data-digit"))
    assert row["top_k"] == answer["top_k"]
    cli_input = np.asarray(Image.open(tmp_path / "in" / "canvas.png"))
    api_input = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["input"]))))
    page_input = np.asarray(Image.open(io.BytesIO(base64.b64decode(page.get_attribute("#input", "src").split(",", 1)[1]))))
    assert cli_input.shape == (28, 28)
    assert np.array_equal(cli_input, api_input)
    assert np.array_equal(cli_input, page_input)


def test_every_refusal_from_the_api_is_shown_in_its_words(page, test_digits):
    """Not "draw a digit" for every 422 of the canvas: the page shows what the server said."""
    digits, _ = test_digits
    detail = "8000x8000 RGBA is too large to decode (244 MiB; at most 64 MiB)"
    page.route("**/api/predict", lambda route: route.fulfill(status=422, json={"detail": detail}))
    draw(page, place(strokes(digits[0]), 10.0, (0.0, 0.0)))
    assert shown(page) == "no prediction"
    assert page.inner_text("#message") == detail
    page.route("**/api/predict", lambda route: route.fulfill(status=503, body="Service Unavailable"))
    draw(page, place(strokes(digits[0]), 10.0, (0.0, 0.0)))
    assert page.inner_text("#message") == "503 Service Unavailable"


def test_the_api_link_works_offline(blank, served):
    """Nothing but the server itself can be reached (no CDN): the page's API link still shows the API."""
    url = served[0]
    blank.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url) else route.abort())
    blank.goto(url)
    blank.click("footer a[href='/openapi.json']")
    blank.wait_for_load_state("load")
    assert "/api/predict" in blank.inner_text("body")


def test_a_page_from_another_site_cannot_use_the_api(blank, served, test_digits):
    """A page of another origin may post a multipart form here (no CORS preflight for that): the server refuses it."""
    url = served[0]
    digit = Image.fromarray(255 - np.asarray(Image.fromarray(test_digits[0][0]).resize((200, 200))))
    png = base64.b64encode(encoded(digit)).decode()
    script = f"""<script>
      const bytes = Uint8Array.from(atob("{png}"), c => c.charCodeAt(0));
      const form = new FormData();
      form.append("image", new Blob([bytes], {{type: "image/png"}}), "digit.png");
      fetch("{url}api/predict", {{method: "POST", mode: "no-cors", body: form}});
    </script>"""
    blank.route("http://localhost:1/", lambda route: route.fulfill(content_type="text/html", body=script))
    with blank.expect_response(lambda r: r.url == f"{url}api/predict") as answer:
        blank.goto("http://localhost:1/")
    assert answer.value.status == 403


def test_collect_saves_the_drawing_under_its_label(page, served, test_digits):
    """serve --collect DIR: a row of "save as" buttons; each saves the canvas as DIR/<label>/drawing.png."""
    page.wait_for_function("!document.getElementById('collect').hidden")
    draw(page, place(strokes(test_digits[0][0]), 10.0, (0.0, 0.0)))
    page.click("text=save as 7")
    page.wait_for_function("document.getElementById('message').textContent.startsWith('saved')")
    saved = served[2] / "7" / "drawing.png"
    assert page.inner_text("#message") == f"saved {saved}"
    assert Image.open(saved).size == (CANVAS, CANVAS)
