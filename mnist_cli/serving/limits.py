"""What a request must meet before the app sees it: a Host the server was started for, no foreign Origin, and a
body of at most MAX_BODY_BYTES (refused with 413 before it is read: by Content-Length, else by counting)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 10 * 2**20  # 10 MiB: a canvas PNG is a few KiB, a phone photo a few MiB


def too_large_message(limit: int = MAX_BODY_BYTES) -> str:
    return f"request body too large (at most {limit / 2**20:.0f} MiB)"


class Guard:
    """ASGI middleware at the door.

    A Host outside `hosts` is refused (a page on another name that resolves here: DNS rebinding); so is an Origin
    other than this server (any web page can post a form here; browsers send its Origin); and a body over `limit`.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES, hosts: frozenset[str] | None = None):
        self.app, self.limit, self.hosts = app, limit, hosts

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
            await refuse(send, 413, too_large_message(self.limit))  # the body is never read
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
