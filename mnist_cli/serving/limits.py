"""Request bodies over MAX_BODY_BYTES are refused with 413 before they are read: by Content-Length, else by counting."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 10 * 2**20  # 10 MiB: a canvas PNG is a few KiB, a phone photo a few MiB


def too_large_message(limit: int = MAX_BODY_BYTES) -> str:
    return f"request body too large (at most {limit / 2**20:.0f} MiB)"


class BodyLimit:
    """ASGI middleware: 413 for a declared Content-Length over the limit, and for a streamed body once it passes it."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.limit:
            await refuse(send, self.limit)  # the body is never read; the server closes the connection
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # An HTTPException passes through FastAPI's body parsing unchanged (other errors become 400).
                    raise HTTPException(413, too_large_message(self.limit))
            return message

        await self.app(scope, counted, send)


def declared_length(scope: Scope) -> int | None:
    """The Content-Length header as a number; None when absent or not a number (the count still applies)."""
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def refuse(send: Send, limit: int) -> None:
    body = json.dumps({"detail": too_large_message(limit)}, separators=(",", ":")).encode()  # as FastAPI writes JSON
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
