"""A real `python -m mnist_cli serve` subprocess for the tests: started on a free port, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READY_S = 60  # seconds for the server to load its checkpoint and print its URL (the machine is shared)


def start_serve(*args: str | Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """(process, URL) of `mnist serve --port 0 ARGS...` from this tree; the URL is its first stdout line's."""
    env = {**(env or os.environ), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "mnist_cli", "serve", "--port", "0", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    timer = threading.Timer(READY_S, proc.kill)  # a server that never prints is killed, so readline returns
    timer.start()
    try:
        line = proc.stdout.readline()
    finally:
        timer.cancel()
    if not line.startswith("serving on http://127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"no URL from mnist serve: {line!r}\n{proc.stderr.read()}")
    return proc, line.split()[2]


def interrupt(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str]:
    """Ctrl-C (SIGINT) the server and wait: (exit code, stderr)."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err
