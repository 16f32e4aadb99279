"""The FastAPI app: one loaded model, the page at /, the JSON API under /api, errors as one line, and guards at the door:
a Host the server was started for, no foreign Origin, and a body of at most MAX_BODY_BYTES (refused with 413 before
it is read: by Content-Length, else by counting)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_cli import __version__
from mnist_cli.checkpoint import checkpoints_root
from mnist_cli.inference.trained import TrainedModel
from mnist_cli.serving.playground import playground
from mnist_cli.serving.routes import api, page
from mnist_cli.serving.runs import MAX_EPOCHS, MAX_PARAMS, Runner

# At most this many images are decoded and classified at once: each request is single-threaded (see `lifespan`),
# so this many requests run in parallel, and a burst of large uploads cannot take all the memory at once.
INFERENCE_WORKERS = max(1, min(4, os.cpu_count() or 1))
NO_IMAGE = "send the image as a file in the form field `image`"
MAX_BODY_BYTES = 10 * 2**20  # 10 MiB: a canvas PNG is a few KiB, a phone photo a few MiB


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

    `hosts`: the Host names requests may carry (None: any); see Guard.
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


class Guard:
    """ASGI middleware at the door.

    A Host outside `hosts` is refused (a page on another name that resolves here: DNS rebinding); so is an Origin
    other than this server (any web page can post a form here; browsers send its Origin); and a body over `limit`.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES, hosts: frozenset[str] | None = None):
        self.app, self.limit, self.hosts = app, limit, hosts
        self.too_large = f"request body too large (at most {limit / 2**20:.0f} MiB)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host, origin = headers.get("host", "").lower(), headers.get("origin")
        if self.hosts is not None and hostname(host) not in self.hosts:
            await refuse(send, 400, f"this server does not answer to the host {host!r}")
            return
        if origin is not None and (urlsplit(origin).scheme not in ("http", "https") or urlsplit(origin).netloc.lower() != host):
            await refuse(send, 403, f"requests from other sites are refused (origin {origin!r})")
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await refuse(send, 413, self.too_large)  # the body is never read
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # An HTTPException passes through FastAPI's body parsing unchanged (other errors become 400).
                    raise HTTPException(413, self.too_large)
            return message

        await self.app(scope, counted, send)


def hostname(host: str) -> str:
    """A Host header without its port: `[::1]:8000` -> `::1`, `localhost:8000` -> `localhost`."""
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def refuse(send: Send, status: int, detail: str) -> None:
    """Answer {"detail": ...} and close the connection, as FastAPI writes JSON."""
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
