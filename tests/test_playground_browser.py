"""The Train page in a real browser (Debian's Chromium driven by Playwright) against a real `mnist serve` process:
XOR learned live from a shipped config, the vanishing-gradient verdict of an 8-layer sigmoid net before its first
epoch ends, Stop, and the runs list."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import chromium, digit_png, invoke, write_mnist
from server_process import REPO, interrupt, start_serve

pytestmark = pytest.mark.slow
WAIT_MS = 240_000  # the machine is shared: a run may wait for a core


@pytest.fixture
def page(tmp_path, trained_checkpoint):
    """The Train page of `mnist serve` started in tmp_path (which holds configs/tutorial-xor.yaml)."""
    executable = chromium()
    from playwright.sync_api import sync_playwright

    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs" / "tutorial-xor.yaml", tmp_path / "configs")
    # 6,000 synthetic images: the page's runs keep MNIST's default val_size of 5,000
    data = write_mnist(tmp_path / "data", n_train=6000)
    proc, url = start_serve("-m", trained_checkpoint, env={**os.environ, "MNIST_DATA_DIR": str(data)})
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1150, "height": 1000})
            page.base_url = url
            yield page
            browser.close()
    finally:
        code, err = interrupt(proc)
        assert code == 0 and "Traceback" not in err, err


def train(page, query: str) -> None:
    page.goto(page.base_url + "train?" + query)
    page.wait_for_function("document.getElementById('config').options.length > 1")  # the shipped configs loaded
    page.click("#overwrite")
    page.click("#train")


def wait(page, condition: str) -> None:
    """Wait until `condition` (JavaScript) holds; a run that fails says why at once."""
    failed = "document.getElementById('status').dataset.status === 'failed'"
    page.wait_for_function(f"({condition}) || {failed}", timeout=WAIT_MS)
    assert not page.evaluate(failed), page.text_content("#status")


def boundary(page) -> str:
    return page.evaluate("document.getElementById('boundary').toDataURL()")


def test_xor_learns_live_verdicts_early_stop_works_runs_are_listed_and_drawn_with(page, tmp_path, wide_run):
    train(page, "config=tutorial-xor")
    assert page.text_content("#command") == "mnist train configs/tutorial-xor.yaml"
    wait(page, "document.getElementById('boundary').dataset.right !== undefined")
    first = boundary(page)
    wait(page, f"document.getElementById('boundary').toDataURL() !== {first!r}")
    wait(page, "document.getElementById('status').dataset.status === 'finished'")
    page.wait_for_selector("#test:has-text('4 of 4 right')", timeout=WAIT_MS)
    assert page.get_attribute("#boundary", "data-right") == "4"
    assert page.text_content("#status") == "finished"

    # 8 sigmoid layers on the synthetic MNIST: the verdict comes from the first epoch's health probes.
    train(page, "depth=8&width=64&activation=sigmoid&batch_size=32&epochs=40")
    wait(page, "document.querySelector('#verdicts li[data-code=vanishing_gradients]')")
    verdict = page.query_selector("#verdicts li[data-code=vanishing_gradients]")
    assert verdict.get_attribute("data-epochs") == "0", "shown only after an epoch ended"
    assert verdict.text_content().startswith("layers 1-")
    assert "of 8: gradients are below 1/1000 of the output layer's" in verdict.text_content()
    page.click("#stop")
    wait(page, "document.getElementById('status').dataset.status === 'stopped'")
    assert "resume with: mnist train --resume" in page.text_content("#status")
    [run] = (tmp_path / "checkpoints" / "default").glob("*model.activation=sigmoid*")
    assert (run / "last.pt").exists() and not (run / "result.json").exists()

    page.click("#refresh")
    page.wait_for_selector("#runs td:has-text('tutorial-xor')")
    rows = {
        tr.query_selector(".id").text_content(): tr.query_selector_all("td")[2].text_content()
        for tr in page.query_selector_all("#runs tbody tr")
    }
    assert rows["tutorial-xor"] == "finished" and rows[str(run.relative_to(tmp_path / "checkpoints"))] == "stopped", rows

    # The draw page reads with any finished image run of the checkpoint folder: here one that `mnist train` wrote.
    drawn = shutil.copytree(wide_run, tmp_path / "checkpoints" / "drawn")
    page.goto(page.base_url)
    page.wait_for_selector("#run option[value=drawn]", state="attached")
    assert [o.get_attribute("value") for o in page.query_selector_all("#run option")] == ["", "drawn"]  # not XOR
    page.select_option("#run", "drawn")
    page.wait_for_function("document.getElementById('model').textContent.includes('784-48-10')")
    assert page.text_content("#model").startswith(str(drawn / "best.pt"))
    (tmp_path / "bar.png").write_bytes(digit_png(row=11))
    with page.expect_response(lambda r: r.url.endswith("/api/predict?run=drawn")) as answer:
        page.set_input_files("#upload", str(tmp_path / "bar.png"))
    page.wait_for_function("document.body.dataset.busy === '0'")
    (row,) = json.loads(invoke("predict", tmp_path / "bar.png", "-m", drawn / "best.pt", "--json").stdout)
    assert answer.value.json()["prediction"] == row["prediction"]
    assert page.text_content("#prediction") == row["label"]
