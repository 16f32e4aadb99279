"""`mnist serve`: a local page to draw digits on, and a JSON API, for one trained checkpoint."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from mnist_cli.cli.app import app, user_errors
from mnist_cli.errors import MnistError


@app.command()
def serve(
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", "-m", help="A best.pt; default: the newest checkpoints/**/best.pt.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback makes the page public.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8000,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a web browser.")] = False,
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0.0, max=1.0, help="Mark predictions below this probability uncertain.")
    ] = 0.5,
    max_params: Annotated[int, typer.Option(min=1, help="The largest model the Train page may start.")] = 5_000_000,
    max_epochs: Annotated[int, typer.Option(min=1, help="The most epochs the Train page may start (truth tables: any).")] = 50,
) -> None:
    """Draw a digit in the browser and watch the network read it.

    Serves a page at /, a Train page at /train (one training at a time, into the checkpoint folder), and a JSON API
    (POST /api/predict, GET /api/model, GET /healthz, /api/runs; documented at /docs). Images are prepared exactly
    as `mnist predict` prepares files. Ctrl-C stops it.
    """
    from mnist_cli.cli.ui import consoles

    stdout, stderr = consoles()
    with user_errors():
        from mnist_cli.inference.trained import load_trained, newest_checkpoint
        from mnist_cli.serving.app import create_app

        if checkpoint is None:
            checkpoint = newest_checkpoint()
        trained = load_trained(checkpoint)
        sock = listen(host, port)
    stderr.print(f"using checkpoint {checkpoint} ({trained.describe()})", markup=False, soft_wrap=True)
    web_app = create_app(trained, min_confidence=min_confidence, limits=(max_params, max_epochs))
    url = page_url(host, sock.getsockname()[1])
    if not is_loopback(host):
        stderr.print(f"warning: listening on {host}: anyone who can reach this machine can use the page", markup=False)
    stdout.print(f"serving on {url}  (Ctrl-C to stop)", markup=False, soft_wrap=True)
    stdout.file.flush()
    if open_browser:
        import webbrowser

        webbrowser.open(url)  # the socket already listens, so the browser's first request waits rather than fails
    run_until_interrupted(web_app, sock)
    stderr.print("stopped", markup=False)


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


def run_until_interrupted(web_app, sock: socket.socket) -> None:
    """Serve on `sock` until Ctrl-C or SIGTERM; uvicorn finishes the requests in progress first."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(web_app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, after shutting down cleanly
        pass
    finally:
        sock.close()
