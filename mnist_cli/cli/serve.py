"""`mnist serve`: a local page to draw digits on, and a JSON API, for one trained checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mnist_cli.cli.app import printable, user_errors
from mnist_cli.cli.predict import ChosenCheckpoint


def serve(
    checkpoint: ChosenCheckpoint = None,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback makes the page public.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8000,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a web browser.")] = False,
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0.0, max=1.0, help="Mark predictions below this probability uncertain.")
    ] = 0.5,
    collect: Annotated[
        Path | None, typer.Option("--collect", help="Show 'save as' buttons that save drawings as DIR/<label>/*.png.")
    ] = None,
    max_params: Annotated[int, typer.Option(min=1, help="The largest model the Train page may start.")] = 5_000_000,
    max_epochs: Annotated[int, typer.Option(min=1, help="The most epochs the Train page may start (truth tables: any).")] = 50,
) -> None:
    """Draw a digit in the browser and watch the network read it, or train one at /train and watch it learn.

    Serves a page at /, a Train page at /train (one training at a time, into the checkpoint folder), and a JSON API
    (POST /api/predict, GET /api/model, GET /healthz, /api/runs; described at /openapi.json). Images are prepared
    exactly as `mnist predict` prepares files. Ctrl-C stops it.
    """
    from mnist_cli.cli.ui import consoles, say
    from mnist_cli.training.interrupt import graceful_stop

    stdout, stderr = consoles()
    # A Ctrl-C while the model loads is recorded here rather than raised where a library might swallow it.
    with user_errors(), graceful_stop("stopping before the server starts") as stop:
        from mnist_cli.inference.discover import image_model
        from mnist_cli.serving.app import create_app
        from mnist_cli.serving.server import allowed_hosts, is_loopback, listen, page_url, run

        trained, chosen = image_model(checkpoint, "serve")
        sock = listen(host, port)
        web_app = create_app(
            trained, min_confidence=min_confidence, hosts=allowed_hosts(host), collect=collect, limits=(max_params, max_epochs)
        )
    if stop():
        sock.close()
        raise typer.Exit(stop.exit_code)
    say(stderr, printable(chosen or f"using checkpoint {trained.path} ({trained.describe()})"))
    url = page_url(host, sock.getsockname()[1])
    if not is_loopback(host):
        stderr.print(f"warning: listening on {host}: anyone who can reach this machine can use the page", markup=False)
    say(stdout, f"serving on {url}  (Ctrl-C to stop)")
    stdout.file.flush()
    if open_browser:
        import webbrowser

        webbrowser.open(url)  # the socket already listens, so the browser's first request waits rather than fails
    run(web_app, sock)
    stderr.print("stopped", markup=False)
