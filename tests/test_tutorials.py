"""The tutorials' networks: each shipped tutorial config reaches what its header says, through the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error, epoch_records, invoke
from PIL import Image

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def train_json(*args) -> dict:
    r = invoke("train", "--json", "-q", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_xor_with_one_hidden_layer_learns_all_four_points(tmp_path):
    out = tmp_path / "xor"
    result = train_json("-c", CONFIGS / "tutorial-xor.yaml", "--out", out)
    assert result["test_accuracy"] == 1.0 and result["epochs"] == 10000
    # 10,000 epochs commit every 100th: 100 metrics rows, not 10,000 validations and checkpoint writes.
    assert [m.epoch for m in epoch_records(out)] == list(range(100, 10001, 100))

    r = invoke("eval", out / "best.pt")
    assert r.exit_code == 0 and "xor truth table" in r.stdout and "wrong" not in r.stdout, r.output
    assert r.stdout.count(" ok ") == 4, r.stdout
    data = json.loads(invoke("eval", out / "best.pt", "--json").stdout)
    table = data["truth_table"]
    assert [row["inputs"] for row in table] == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert [row["target"] for row in table] == [row["prediction"] for row in table] == [0, 1, 1, 0]
    assert data["n"] == 4 and data["accuracy"] == 1.0


def test_xor_without_a_hidden_layer_cannot_get_all_four(tmp_path):
    # A linear model separates the plane with one line: no epoch count fixes that, so a short run shows it.
    result = train_json("-c", CONFIGS / "tutorial-xor.yaml", "--depth", "0", "--epochs", "1000", "--out", tmp_path / "x0")
    assert result["test_accuracy"] == 0.75  # 3 of 4 at best, as one line can do
    r = invoke("eval", tmp_path / "x0" / "best.pt")
    assert r.exit_code == 0 and "wrong" in r.stdout, r.output


def test_a_single_layer_learns_and_and_predict_refuses_its_checkpoint_in_one_line(tmp_path):
    result = train_json("-c", CONFIGS / "tutorial-and.yaml", "--out", tmp_path / "and")
    assert result["test_accuracy"] == 1.0 and result["parameters"] == 6  # 2 inputs x 2 classes + 2 biases
    image = tmp_path / "x.png"
    Image.new("L", (28, 28), 255).save(image)
    r = invoke("predict", "-m", tmp_path / "and" / "best.pt", image)
    assert_clean_error(r, "and truth table: predict takes no images", "mnist eval")


def test_digits_reach_the_stated_accuracy_and_predict_held_out_digits_drawn_as_images(tmp_path):
    config = CONFIGS / "tutorial-digits.yaml"
    out = tmp_path / "digits"
    result = train_json("-c", config, "--out", out)
    stated = re.search(r"Reaches here: ([\d.]+)% test accuracy", config.read_text())  # 'Reaches here: 97.8% test accuracy'
    assert stated and result["test_accuracy"] >= float(stated.group(1)) / 100 - 5e-4, result  # the header rounds to 0.1%
    assert result["parameters"] == 64 * 32 + 32 + 32 * 10 + 10
    data = json.loads(invoke("eval", out / "best.pt", "--json").stdout)
    assert data["n"] == 360 and len(data["confusion"]) == 10 and "truth_table" not in data

    # People's images made from held-out digits: dark ink on white, smoothly enlarged, with a margin.
    from mnist_cli.data.small import load_digits_split

    _, test = load_digits_split()
    paths = []
    for i in range(0, len(test), 9):
        counts = test.images[i].numpy().astype(np.float32)
        big = Image.fromarray((255 - counts / 16 * 255).astype(np.uint8)).resize((96, 96), Image.Resampling.BICUBIC)
        path = tmp_path / f"{i}-{int(test.labels[i])}.png"
        Image.fromarray(np.pad(np.asarray(big), 16, constant_values=255)).save(path)
        paths.append(path)
    r = invoke("predict", "-m", out / "best.pt", "--json", *paths)
    assert r.exit_code == 0, r.output
    answers = json.loads(r.stdout)
    right = sum(a["label"] == Path(a["path"]).stem.split("-")[1] for a in answers)
    assert right >= 0.9 * len(paths), (right, len(paths))  # measured 116/120 with this checkpoint's recipe

    r = invoke("predict", "-m", out / "best.pt", "--show", paths[0])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) >= 8  # the 8x8 input drawn beside the answer


@pytest.mark.parametrize(("name", "accuracy"), [("xor", 0.5), ("and", 0.75), ("or", 0.75)])
def test_every_truth_table_trains_and_evaluates_through_the_cli(name, accuracy, tmp_path):
    result = train_json(
        "-c", CONFIGS / "tutorial-xor.yaml", "--set", f"data.dataset={name}", "--epochs", "20", "--out", tmp_path / name
    )
    assert (result["val_accuracy"], result["test_accuracy"]) == (None, accuracy)  # 20 epochs: still on its way
    r = invoke("eval", tmp_path / name / "best.pt", "--split", "val")
    assert r.exit_code == 2 and "no validation split" in r.stderr, r.output
