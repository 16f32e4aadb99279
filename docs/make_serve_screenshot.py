"""Make docs/images/serve.png: the real `mnist serve` page in Debian's Chromium, with a 2 drawn on its canvas.

    python docs/make_serve_screenshot.py [-m checkpoints/default/best.pt]

Starts `python -m mnist_cli serve --port 0` from this checkout on 127.0.0.1, draws the strokes below with the mouse
(Playwright driving /usr/bin/chromium), waits for the page's answer, takes the screenshot and stops the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A 2 in canvas pixels (the canvas is 280 px square): the top arc, the diagonal, the base.
TWO = [
    [(80, 90), (100, 60), (140, 48), (180, 60), (195, 95), (180, 135), (140, 175), (100, 210), (80, 230)],
    [(80, 230), (130, 228), (180, 226), (210, 226)],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--checkpoint", default="checkpoints/default/best.pt")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "serve.png")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "mnist_cli", "serve", "--port", "0", "-m", args.checkpoint]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = server.stdout.readline().split()[2]  # "serving on http://127.0.0.1:PORT/ ..."
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 900, "height": 700})
            page.goto(url)
            page.wait_for_function("!document.getElementById('model').textContent.startsWith('loading')")
            box = page.locator("#canvas").bounding_box()
            for stroke in TWO:
                page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
                page.mouse.down()
                for x, y in stroke[1:]:
                    page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
                page.mouse.up()
            page.wait_for_function("document.body.dataset.busy === '0'", timeout=30_000)
            page.screenshot(path=str(args.out))
            print(f"{args.out.relative_to(REPO)}: the page reads it as {page.inner_text('#prediction')!r}")
            browser.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
