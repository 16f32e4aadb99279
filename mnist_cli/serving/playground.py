"""The Train page (GET /train) and its API: POST/GET/DELETE /api/runs, the runs' event streams, comparisons, configs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from mnist_cli import record
from mnist_cli.errors import MnistError
from mnist_cli.serving.runs import CONFIGS, POLL_S, LiveRun, Runner, relative_id, shipped_configs

playground = APIRouter(tags=["training"])
MISTAKES = 12
NOT_FOUND = {404: {"description": "No run folder with this id under the checkpoint folder."}}


@playground.get("/train", response_class=HTMLResponse, include_in_schema=False)
def train_page() -> str:
    return resources.files("mnist_cli.serving").joinpath("static/train.html").read_text(encoding="utf-8")


@playground.get("/api/configs")
def configs() -> dict[str, Any]:
    """The shipped configs (configs/*.yaml in the server's working folder), as the YAML mappings they hold."""
    from mnist_cli.config import read_yaml

    return {name: read_yaml(CONFIGS / f"{name}.yaml") for name in shipped_configs()}


@playground.post(
    "/api/runs",
    status_code=202,
    responses={409: {"description": "A run is training, or the run folder holds a run (pass overwrite)."}, 422: {}},
)
def start_run(
    request: Request,
    settings: Annotated[dict[str, Any], Body(examples=[{"model": {"depth": 8}, "train": {"epochs": 1}}])],
    config: Annotated[str | None, Query(description="A shipped config to start from (configs/NAME.yaml).")] = None,
    overwrite: Annotated[bool, Query(description="Replace a finished run of the same settings.")] = False,
) -> dict[str, str]:
    """Train with these settings (the YAML keys) in a run folder named as `mnist train` names it; one at a time."""
    run = request.app.state.runner.start(settings, config, overwrite)
    return {"id": run.id, "run_dir": str(run.run_dir), "command": run.command}


@playground.get("/api/runs")
def list_runs(request: Request) -> list[dict[str, Any]]:
    """Every run folder under the checkpoint folder (trained from the page or the command line), newest first."""
    runner: Runner = request.app.state.runner
    folders = sorted(runner.root.glob("**/config.yaml"), key=lambda p: p.stat().st_mtime, reverse=True)[:500]
    return [describe(runner, p.parent) for p in folders]


@playground.get("/api/compare")
def compare(request: Request, run: Annotated[list[str], Query(description="Two or more run ids.")]) -> dict[str, Any]:
    """What `mnist compare` shows: the settings that differ, and each run's curves."""
    from mnist_cli.report.compare import differing_settings
    from mnist_cli.report.run import load_run

    runner: Runner = request.app.state.runner
    try:
        runs = [load_run(folder(runner, i)) for i in run]
    except MnistError as e:
        raise HTTPException(422, str(e)) from None
    if len(runs) < 2:
        raise HTTPException(422, "compare needs at least two runs")
    settings = differing_settings([r.config for r in runs])
    return {
        "differing_keys": list(settings[0]),
        "runs": [
            {
                "id": i,
                "settings": s,
                "test_accuracy": r.result.test_accuracy if r.result else None,
                # accuracy per epoch: validation, or training for runs without a validation split (truth tables)
                "epochs": [[m.epoch, m.train_accuracy if m.val_accuracy is None else m.val_accuracy] for m in r.metrics],
                "steps": [[x.global_step, x.loss] for x in r.steps],
            }
            for i, r, s in zip(run, runs, settings, strict=True)
        ],
    }


@playground.get("/api/runs/{run_id:path}/events", responses=NOT_FOUND)
def events(request: Request, run_id: str) -> StreamingResponse:
    """Server-Sent Events: the run's records (events.jsonl's), from the start, then live, then `end`.

    A run this server trains also sends `started`, `verdicts` (whenever they change) and `weights` snapshots."""
    runner: Runner = request.app.state.runner
    live, path = runner.runs.get(run_id), folder(runner, run_id)
    return StreamingResponse(stream(live) if live else replay(path), media_type="text/event-stream")


@playground.get("/api/runs/{run_id:path}", responses=NOT_FOUND)
def run_status(request: Request, run_id: str) -> dict[str, Any]:
    """The run's status, config and result; a finished run's confusion matrix and most confident mistakes."""
    return describe(request.app.state.runner, folder(request.app.state.runner, run_id), details=True)


@playground.delete("/api/runs/{run_id:path}", responses=NOT_FOUND)
def stop_run(request: Request, run_id: str) -> JSONResponse:
    """Stop the run as Ctrl-C does: it saves last.pt after this step (`mnist train --resume` finishes it)."""
    live = request.app.state.runner.runs.get(run_id)
    if live is None or live.done:
        raise HTTPException(409 if live else 404, f"{run_id} is not training")
    live.stop.set()
    return JSONResponse({"id": run_id, "status": "stopping"}, status_code=202)


def folder(runner: Runner, run_id: str) -> Path:
    """The run folder of an id, which must lie inside the checkpoint folder."""
    if run_id in runner.runs:  # its folder may not be written yet
        return runner.runs[run_id].run_dir
    path = (runner.root / run_id).resolve()
    if not path.is_relative_to(runner.root.resolve()) or not (path / "config.yaml").is_file():
        raise HTTPException(404, f"no run {run_id!r} under {runner.root}")
    return path


def describe(runner: Runner, path: Path, details: bool = False) -> dict[str, Any]:
    run_id = relative_id(runner.root, path)
    live = runner.runs.get(run_id)
    try:
        result = record.read_result(path)
    except MnistError as e:
        return {"id": run_id, "run_dir": str(path), "status": "unreadable", "message": str(e)}
    status = live.status if live else "finished" if result else "unfinished"
    out = {"id": run_id, "run_dir": str(path), "status": status, "result": result and result.__dict__}
    if live:
        out |= {"command": live.command, "message": live.message}
    if details:
        from mnist_cli.config import read_yaml

        out["config"] = live.config.model_dump(mode="json") if live else read_yaml(path / "config.yaml")
        try:
            out["summary"] = summary(path) if result else None
        except MnistError as e:  # a run folder may come from someone else
            out |= {"summary": None, "message": str(e)}
    return out


def summary(path: Path) -> dict[str, Any]:
    """The best model on the test set: the confusion matrix and the MISTAKES most confident mistakes."""
    from mnist_cli.inference.trained import load_trained
    from mnist_cli.report.build import test_answers

    trained = load_trained(path / "best.pt")
    test, p, evaluation, wrong = test_answers(trained)
    return {
        "classes": trained.classes,
        "confusion": evaluation.confusion,
        "mistakes": [
            {
                "label": int(p.labels[i]),
                "predicted": int(p.predictions[i]),
                "confidence": round(float(p.confidence[i]), 4),
                "pixels": test.images[i].flatten().tolist() if test.images[i].numel() > 2 else None,
            }
            for i in wrong[:MISTAKES].tolist()
        ],
    }


def sse(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def stream(run: LiveRun) -> AsyncIterator[str]:
    """A live run's events so far, then each new one (and the newest snapshot) every POLL_S, until it ends."""
    sent, shown = 0, 0
    while True:
        while sent < len(run.events):
            yield sse(*run.events[sent])
            sent += 1
            if run.events[sent - 1][0] == "end":
                return
        if run.snapshot[0] != shown:
            shown, data = run.snapshot
            yield sse("weights", data)
        await anyio.sleep(POLL_S)


async def replay(path: Path) -> AsyncIterator[str]:
    """A run folder's records, as events.jsonl holds them, then `end`."""
    try:
        records = await anyio.to_thread.run_sync(record.read_run_records, path)
        for r in records:
            yield sse(r.kind, json.loads(record.to_json(r)))
        yield sse("end", {"status": "finished" if (path / record.RESULT).exists() else "unfinished", "message": ""})
    except MnistError as e:
        yield sse("end", {"status": "unreadable", "message": str(e)})
