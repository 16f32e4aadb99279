"""Running the app: the listening socket, the host names it answers to, and uvicorn with limits on slow clients."""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket

from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from mnist_cli.errors import MnistError

HEADER_TIMEOUT_S = 10  # a request's headers must arrive within this; uvicorn only times out idle connections
MAX_CONNECTIONS = 64  # beyond this, uvicorn answers 503 at once
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), so the URL printed is the real one before serving starts."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        return socket.create_server(address[:2], family=family, backlog=128)
    except socket.gaierror as e:
        raise MnistError(f"cannot listen on {host}: {e.strerror or e}") from None
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)  # create_server's own message repeats the address
        raise MnistError(f"cannot listen on {host}:{port}: {reason}") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def page_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def allowed_hosts(host: str) -> frozenset[str] | None:
    """The Host names a request may carry: the address listened on and, on loopback, its names; None (any) when
    listening on every interface, whose names nobody can list. A page served from another name (DNS rebinding) is
    refused."""
    if host in ("0.0.0.0", "::", ""):
        return None
    return frozenset({host.lower(), *(LOOPBACK_NAMES if is_loopback(host) else ())})


class _H11(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers: a client that never finishes them is cut off;
    and TCP_NODELAY, which asyncio sets only on sockets made with proto IPPROTO_TCP (create_server's are proto 0):
    without it, a keep-alive answer's body waits for the client to acknowledge its headers, 40 ms on Linux."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        self._deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._deadline()

    def _deadline(self) -> None:
        cycle = self.cycle  # replaced when the next request's headers are complete
        self.loop.call_later(HEADER_TIMEOUT_S, lambda: self.cycle is cycle and self.transport.close())


def keep_freed_memory() -> None:
    """glibc's malloc gives a thread's freed memory back to the system once 2x its largest recent block lies free: every
    request then faulted its arrays back in (830 page faults for a 280 px picture, a third of its CPU time). Keep up to
    16 MiB of it, and take arrays under 4 MiB from the heap; elsewhere (macOS, musl, Windows) nothing changes."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD
    mallopt(-1, 16 << 20)  # M_TRIM_THRESHOLD


def run(app: FastAPI, sock: socket.socket) -> None:
    """Serve on `sock` until Ctrl-C or SIGTERM; uvicorn finishes the requests in progress first."""
    import uvicorn

    keep_freed_memory()
    config = uvicorn.Config(
        app, http=_H11, log_level="warning", lifespan="on", timeout_graceful_shutdown=5, limit_concurrency=MAX_CONNECTIONS
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, after shutting down cleanly
        pass
    finally:
        sock.close()
