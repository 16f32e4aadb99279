"""Make docs/images/tensorboard-*.png: a real `tensorboard` process over LOGDIR, photographed in Debian's Chromium.

    mnist train --set model.depth=8 --set model.activation=sigmoid --set model.width=128 \
        --set train.health_probes_per_epoch=10 --epochs 3 --out LOGDIR/sigmoid-8
    mnist train --set model.depth=8 --set model.width=128 --set train.health_probes_per_epoch=10 --epochs 3 \
        --out LOGDIR/relu-8
    mnist sweep --grid model.depth=1,2 --grid train.lr=0.001,0.01 --epochs 1 --set model.width=64 --out LOGDIR/sweep
    python docs/make_tensorboard_screenshots.py LOGDIR

Starts tensorboard on 127.0.0.1, opens its scalars, histograms and HParams dashboards with Playwright driving
/usr/bin/chromium, takes a screenshot of each and stops the server.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"
PORT = 6123
# (file, dashboard and its filters in TensorBoard's URL, runs to show: a regex over run names)
KEEP = {"model.depth", "model.activation", "train.lr"}  # the HParams table's config columns; the metrics follow
SHOTS = [
    ("tensorboard-scalars.png", "scalars&tagFilter=health%2Fgrad_norm%2F(hidden.0|hidden.3|hidden.7|output)", "sigmoid-8|relu-8"),
    ("tensorboard-histograms.png", "histograms&tagFilter=gradients%2F(hidden.3|hidden.7|output)", "sigmoid-8"),
    ("tensorboard-hparams.png", "hparams", "sweep"),
]


def main(logdir: str) -> None:
    cmd = ["tensorboard", "--logdir", logdir, "--host", "127.0.0.1", "--port", str(PORT)]
    server = subprocess.Popen([str(Path(sys.executable).parent / cmd[0]), *cmd[1:]], stderr=subprocess.DEVNULL)
    try:
        time.sleep(8)  # TensorBoard reads the event files before it answers
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for name, dashboard, runs in SHOTS:
                page.goto(f"http://127.0.0.1:{PORT}/?darkMode=false#{dashboard}&regexInput={runs}")
                time.sleep(8)  # the dashboards draw asynchronously
                for button in page.locator("tf-category-pane").first.locator("[title='Toggle y-axis log scale']").all():
                    if button.is_visible():
                        button.click()  # gradient norms span orders of magnitude
                for box in page.locator("tf-hparams-query-pane paper-checkbox").all():
                    label = (box.text_content() or "").strip()
                    config_key = label.startswith(("data.", "model.", "train.", "seed"))
                    if config_key and (label in KEEP) != (box.get_attribute("aria-checked") == "true"):
                        box.click()
                time.sleep(2)
                page.screenshot(path=str(IMAGES / name))
                print(IMAGES / name)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1])
