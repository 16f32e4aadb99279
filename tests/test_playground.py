"""The Train page's API (/api/runs) through TestClient: runs train in a real child process on the synthetic data."""

from __future__ import annotations

import json
import queue
import shlex
import shutil
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY, assert_identical, digit_png, invoke, train_run, write_config
from fastapi.testclient import TestClient

from mnist_cli.config import load_config
from mnist_cli.inference.trained import load_trained
from mnist_cli.model import build_model
from mnist_cli.serving import runs
from mnist_cli.serving.app import create_app
from mnist_cli.serving.runs import LiveRun, follow


@pytest.fixture
def client(trained_checkpoint):
    with TestClient(create_app(load_trained(trained_checkpoint), limits=(10**6, 300))) as c:
        yield c


def events(client: TestClient, run_id: str, until: str = "end") -> list[tuple[str, dict]]:
    """The run's Server-Sent Events, read up to the first `until` event (the stream ends with `end` on its own)."""
    out, name = [], None
    with client.stream("GET", f"/api/runs/{run_id}/events") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[6:])))
                if name == until:
                    break
    return out


def with_epochs(epochs: int) -> dict:
    return {**TINY, "train": {**TINY["train"], "epochs": epochs}}


def test_a_run_started_by_the_api_streams_its_records_and_equals_mnist_train(client, tmp_path):
    r = client.post("/api/runs", json=TINY)
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["command"].startswith("mnist train --set seed=0 --set data.val_size=100 --set model.depth=1")
    got = events(client, started["id"])
    names = [n for n, _ in got]
    assert names[0] == "started" and names[-2:] == ["test", "end"] and got[-1][1]["status"] == "finished", got[-1]
    run_dir = Path(started["run_dir"])
    # The stream's records are the run folder's, in order.
    assert [d for n, d in got if n in ("step", "health", "epoch", "test")] == [
        json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()
    ]
    # The command the page shows trains the same run, bit for bit.
    cli = invoke(*shlex.split(started["command"])[1:], "--out", tmp_path / "cli", "--quiet")
    assert cli.exit_code == 0, cli.output
    assert_identical(run_dir, tmp_path / "cli")
    status = client.get(f"/api/runs/{started['id']}").json()
    assert status["status"] == "finished" and status["result"]["test_accuracy"] == got[-2][1]["accuracy"]
    summary = status["summary"]
    assert sum(map(sum, summary["confusion"])) == 200  # every synthetic test image
    assert all(m["label"] != m["predicted"] and len(m["pixels"]) == 784 for m in summary["mistakes"])
    listed = {run["id"]: run["status"] for run in client.get("/api/runs").json()}
    assert listed == {started["id"]: "finished"}


def test_one_run_at_a_time_bad_settings_and_limits(client):
    first = client.post("/api/runs", json=with_epochs(300)).json()
    second = client.post("/api/runs", json={**TINY, "seed": 1})
    assert second.status_code == 409 and first["id"] in second.json()["detail"], second.text
    assert client.get(f"/api/runs/{first['id']}").json()["status"] == "running"
    predicted = client.post("/api/predict", files={"image": ("bar.png", digit_png(side=28), "image/png")})
    assert predicted.status_code == 200 and predicted.json()["label"] in "0123456789", predicted.text  # while it trains
    client.delete(f"/api/runs/{first['id']}")
    assert events(client, first["id"])[-1][1]["status"] in ("stopped", "finished")
    bad = {"model": {"depth": -1, "activation": "step"}, "train": {"lr": 0, "epoch": 3}}
    r = client.post("/api/runs", json=bad)
    assert r.status_code == 422
    cli = invoke(
        "train", "--set", "model.depth=-1", "--set", "model.activation=step", "--set", "train.lr=0", "--set", "train.epoch=3"
    )
    assert len(r.json()["detail"]) == 4
    for problem in r.json()["detail"]:
        assert problem in cli.stderr, (problem, cli.stderr)
    big = client.post("/api/runs", json={"model": {"width": 4096}, "train": {"epochs": 301}})
    assert big.status_code == 422 and big.json()["detail"] == [
        "model: 20,037,642 parameters; this server trains at most 1,000,000 (--max-params)",
        "train.epochs: 301; this server trains at most 300 (--max-epochs)",
    ]


def test_stop_saves_last_pt_that_mnist_train_resume_finishes_bit_identically(client, tmp_path):
    started = client.post("/api/runs", json=with_epochs(40)).json()
    got = events(client, started["id"], until="epoch")  # the first epoch is in: Stop lands mid-run
    assert got[-1][0] == "epoch"
    assert client.delete(f"/api/runs/{started['id']}").json() == {"id": started["id"], "status": "stopping"}
    end = events(client, started["id"])[-1][1]
    assert end["status"] == "stopped" and "resume with: mnist train --resume" in end["message"], end
    assert client.delete(f"/api/runs/{started['id']}").status_code == 409  # it is not training any more
    run_dir = Path(started["run_dir"])
    resumed = invoke("train", "--resume", run_dir / "last.pt", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    whole = invoke(*shlex.split(started["command"])[1:], "--out", tmp_path / "whole", "--quiet")
    assert whole.exit_code == 0, whole.output
    assert_identical(run_dir, tmp_path / "whole")


def test_runs_from_the_command_line_are_listed_replayed_and_compared(client, finished_run, wide_run, tmp_path):
    root = tmp_path / "checkpoints"
    shutil.copytree(finished_run, root / "narrow")  # copies of runs `mnist train` left: TINY, 32 wide
    wide = shutil.copytree(wide_run, root / "wide")
    assert {r["id"]: r["status"] for r in client.get("/api/runs").json()} == {"narrow": "finished", "wide": "finished"}
    replayed = events(client, "wide")
    assert [d for _, d in replayed[:-1]] == [json.loads(line) for line in (wide / "events.jsonl").read_text().splitlines()]
    assert replayed[-1] == ("end", {"status": "finished", "message": ""})
    compared = client.get("/api/compare", params={"run": ["narrow", "wide"]}).json()
    assert compared["differing_keys"] == ["model.width"]
    assert [r["settings"] for r in compared["runs"]] == [{"model.width": 32}, {"model.width": 48}]
    assert [len(r["epochs"]) for r in compared["runs"]] == [2, 2]
    assert client.get("/api/compare", params={"run": ["narrow"]}).status_code == 422
    for outside in ("..%2F..%2Fetc", "%2Fetc", "nowhere"):
        r = client.get(f"/api/runs/{outside}")
        assert r.status_code == 404 and "no run" in r.json()["detail"], (outside, r.text)
    assert client.delete("/api/runs/narrow").status_code == 404  # not a run this server trains


def test_a_finished_run_with_a_damaged_best_pt_still_answers(client, finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "checkpoints" / "damaged")
    (run / "best.pt").write_bytes(b"not a checkpoint")
    r = client.get("/api/runs/damaged")
    assert r.status_code == 200 and r.json()["status"] == "finished" and r.json()["summary"] is None, r.text
    assert "best.pt" in r.json()["message"], r.json()["message"]


def test_the_draw_page_can_read_with_any_run_of_the_checkpoint_folder(
    client, wide_run, xor_checkpoint, stopped_before_an_epoch, tmp_path
):
    wide = shutil.copytree(wide_run, tmp_path / "checkpoints" / "wide")
    shutil.copytree(xor_checkpoint.parent, tmp_path / "checkpoints" / "xor")
    shutil.copytree(stopped_before_an_epoch, tmp_path / "checkpoints" / "stopped")
    (tmp_path / "bar.png").write_bytes(digit_png(side=28))
    r = client.post("/api/predict", params={"run": "wide"}, files={"image": ("bar.png", digit_png(side=28), "image/png")})
    assert r.status_code == 200, r.text
    cli = invoke("predict", tmp_path / "bar.png", "-m", wide / "best.pt", "--json")
    (row,) = json.loads(cli.stdout)
    row |= {"path": "bar.png", "uncertain": r.json()["uncertain"]}  # serve marks below 0.5 uncertain
    assert {k: r.json()[k] for k in row} == row
    chosen = client.get("/api/model", params={"run": "wide"}).json()
    assert (chosen["checkpoint"], chosen["architecture"]) == (str(wide / "best.pt"), "784-48-10")
    assert client.get("/api/model").json()["architecture"] == "784-32-10"  # the served one, when none is chosen
    refused = {
        "xor": (422, f"{tmp_path / 'checkpoints' / 'xor' / 'best.pt'} was trained on the xor truth table: serve takes"),
        "stopped": (404, "stopped has no best.pt yet (it saves one when its first epoch ends)"),
        "nowhere": (404, f"no run 'nowhere' under {tmp_path / 'checkpoints'}"),
    }
    for run, (status, message) in refused.items():
        r = client.post("/api/predict", params={"run": run}, files={"image": ("bar.png", digit_png(side=28), "image/png")})
        assert r.status_code == status and r.json()["detail"].startswith(message), (run, r.text)


def test_a_verdict_goes_into_the_stream_before_the_epoch_that_followed_the_probe_that_found_it(tmp_path, synthetic_root):
    """A busy server may read two epochs of events.jsonl at once; the page still learns of the vanishing gradients of
    8 sigmoid layers from the first epoch's probes, before that epoch ends (CI saw it only after two)."""
    deep = train_run(tmp_path / "deep", synthetic_root, model={"depth": 8, "width": 64, "activation": "sigmoid"})
    run = LiveRun("deep", deep, "", load_config(deep / "config.yaml"), stop=None)
    read, said = follow(run, 0, [])  # the whole run in one read
    assert read == (deep / "events.jsonl").stat().st_size and said
    names = [name for name, _ in run.events]
    first = next(i for i, (name, found) in enumerate(run.events) if name == "verdicts" and "vanishing_gradients" in str(found))
    assert names[:first].count("health") >= 1 and "epoch" not in names[:first], names
    assert names.count("epoch") == 2 and names.count("verdicts") >= 2, names  # the epochs add the verdicts on accuracy


@pytest.mark.parametrize("smoothing", [0.0, 0.1])  # the step by hand (training/backprop.py), and by autograd
def test_the_training_child_sends_pictures_of_the_model_it_trains(smoothing, tmp_path, monkeypatch):
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # the child's Ctrl-C rule, not this test process's
    messages, config = queue.Queue(), {**TINY, "train": {**TINY["train"], "label_smoothing": smoothing, "health": False}}
    runs.train_child(yaml.safe_dump(config), str(tmp_path / "run"), False, messages, threading.Event())
    sent = [messages.get_nowait() for _ in range(messages.qsize())]
    assert sent[-1] == ("end", "finished", ""), sent[-1]
    step, first = next(payload for kind, *payload in sent if kind == "weights")
    torch.manual_seed(0)  # the run's initial weights
    start = build_model(load_config(write_config(tmp_path / "c.yaml")).model, 784, 10).hidden[0].linear.weight
    assert step["epoch"] == 1 and first["tiles"].shape == (32, 784)  # from the first epoch on; the first layer's 32 units
    assert np.isfinite(first["tiles"]).all() and not np.array_equal(first["tiles"], start.detach().numpy())  # trained
