"""Pictures for the tutorials' networks: decision boundary and hidden units for 2 inputs, 8x8 tiles for digits."""

from __future__ import annotations

import json

import numpy as np
import torch
from conftest import XOR, invoke, write_config
from matplotlib.figure import Figure

from mnist_cli.config import load_config
from mnist_cli.data.small import truth_table
from mnist_cli.inference.trained import load_trained
from mnist_cli.report.boundary import dataset_figures, input_grid
from mnist_cli.training.loop import train


def report_files(run) -> set[str]:
    r = invoke("report", run, "--json")
    assert r.exit_code == 0, r.output
    return {p.rsplit("/", 1)[-1] for p in json.loads(r.stdout)["files"]}


def test_the_grid_is_the_models_answer_over_the_input_square_and_report_draws_it_for_xor_and_tiles_for_digits(tmp_path):
    train(load_config(write_config(tmp_path / "x.yaml", **XOR), ["train.epochs=30"]), tmp_path / "xor")
    trained = load_trained(tmp_path / "xor" / "best.pt")
    grid = input_grid(trained.model, trained.normalization, resolution=5)
    assert grid.probability.shape == (5, 5) and [h.shape for h in grid.hidden] == [(3, 5, 5)]
    grid = input_grid(trained.model, trained.normalization, resolution=7)  # -0.25, 0, 0.25, ..., 1.25
    points = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    corners = [grid.probability[b, a] for a, b in ((1, 1), (1, 5), (5, 1), (5, 5))]  # (a,b) = (0,0), (0,1), (1,0), (1,1)
    assert np.allclose(corners, trained.model(points).softmax(1)[:, 1].detach().numpy(), atol=1e-6)
    figures = dataset_figures(trained, truth_table("xor"))
    assert set(figures) == {"boundary", "hidden-units"} and all(isinstance(f, Figure) for f in figures.values())

    files = report_files(tmp_path / "xor")
    assert {"boundary.png", "hidden-units.png", "curves.png", "health.png"} <= files
    assert not {"mistakes.png", "weights.png"} & files
    # What the captions say is true of a truth table: no validation split, no digits, health probed on the training set.
    page = (tmp_path / "xor" / "report" / "report.md").read_text()
    assert "validation images" not in page and "digit" not in page, page
    assert "taken from the training step" in page and "4 training examples (there is no validation split)" in page

    digits = dict(data={"dataset": "digits", "val_size": 144}, train={"epochs": 2, "batch_size": 256})
    train(load_config(write_config(tmp_path / "d.yaml", **digits)), tmp_path / "digits")
    files = report_files(tmp_path / "digits")
    assert {"weights.png", "mistakes.png"} <= files and "boundary.png" not in files
