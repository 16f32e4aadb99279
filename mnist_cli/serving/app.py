"""The FastAPI app: one loaded model, the page at /, the JSON API under /api, guards at the door, errors as one line."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from mnist_cli import __version__
from mnist_cli.checkpoint import checkpoints_root
from mnist_cli.inference.trained import TrainedModel
from mnist_cli.serving.limits import MAX_BODY_BYTES, Guard
from mnist_cli.serving.playground import playground
from mnist_cli.serving.routes import api, page
from mnist_cli.serving.runs import MAX_EPOCHS, MAX_PARAMS, Runner

# At most this many images are decoded and classified at once: each request is single-threaded (see `lifespan`),
# so this many requests run in parallel, and a burst of large uploads cannot take all the memory at once.
INFERENCE_WORKERS = max(1, min(4, os.cpu_count() or 1))
NO_IMAGE = "send the image as a file in the form field `image`"


@dataclass
class Serving:
    """What the routes share, on `app.state.serving`."""

    trained: TrainedModel
    top_k: int
    min_confidence: float
    collect: Path | None = None  # serve --collect: drawings saved as DIR/<label>/drawing-N.png
    limiter: anyio.CapacityLimiter | None = None  # made in `lifespan`, inside the server's event loop


def create_app(
    trained: TrainedModel,
    *,
    min_confidence: float = 0.5,
    top_k: int = 3,
    max_body: int = MAX_BODY_BYTES,
    hosts: frozenset[str] | None = None,
    collect: Path | None = None,
    limits: tuple[int, int] = (MAX_PARAMS, MAX_EPOCHS),
) -> FastAPI:
    """The app serving `trained`: GET / (the page), POST /api/predict, GET /api/model, GET /healthz; the Train page
    at /train with /api/runs (`limits`: the most parameters and epochs a page may start).

    `hosts`: the Host names requests may carry (None: any); see limits.Guard.
    """
    serving = Serving(trained, top_k, min_confidence, collect)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One torch thread per request: a batch of one image gains nothing from intra-op threads, and
        # INFERENCE_WORKERS requests each spawning a pool of cpu_count threads would fight over the cores.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        serving.limiter = anyio.CapacityLimiter(INFERENCE_WORKERS)
        try:
            yield
            await anyio.to_thread.run_sync(app.state.runner.stop_all)  # a run the server started ends with it, last.pt saved
        finally:
            torch.set_num_threads(threads)  # leave the process as we found it (tests run apps in-process)

    # No /docs: Swagger UI comes from a CDN and the page must work offline; /openapi.json describes the API.
    app = FastAPI(title="mnist serve", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.serving = serving
    app.include_router(page)
    app.include_router(api)
    app.state.runner = Runner(checkpoints_root(), *limits)
    app.include_router(playground)
    app.mount("/static", StaticFiles(packages=[("mnist_cli.serving", "static")]), name="static")
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, form_error)
    app.add_middleware(Guard, limit=max_body, hosts=hosts)
    return app


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Errors as {"detail": ...}; a body that cannot be parsed as a form is the client's bad input: 422, like a missing field."""
    status = 422 if exc.status_code == 400 else exc.status_code
    return JSONResponse({"detail": exc.detail}, status_code=status, headers=exc.headers)


async def form_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A form without an image file: one line, as every other error, not FastAPI's list of dicts."""
    return JSONResponse({"detail": NO_IMAGE}, status_code=422)
