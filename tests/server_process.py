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


def serve_process(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`mnist serve --port 0 ARGS...` from this tree, its output piped; `env`: the environment (default: ours)."""
    env = env or dict(os.environ)
    env = {**env, "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "mnist_cli", "serve", "--port", "0", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def start_serve(*args: str | Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """(process, URL) of `mnist serve --port 0 ARGS...`; the URL is its first stdout line's."""
    proc = serve_process(*args, env=env)
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


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int | None, str, str]:
    """Wait for the process: (exit code, stdout, stderr); (None, ...) if it was still running and had to be killed."""
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return None, out, err


def interrupt(proc: subprocess.Popen, timeout: float = 30) -> tuple[int | None, str]:
    """Ctrl-C (SIGINT) the server and wait: (exit code, stderr)."""
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, timeout)
    return code, err
