"""Load on a real `mnist serve`: N requests of real digit PNGs from C concurrent clients on 127.0.0.1.

Bounded in count (`requests`) and in time (`deadline_s`: clients stop sending when it passes; each request
also times out). Latency is per request, from sending to the full answer, measured by the client.
"""

from __future__ import annotations

import http.client
import io
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REQUEST_TIMEOUT_S = 10


def digit_pngs(images: np.ndarray) -> list[bytes]:
    """uint8 (N, 28, 28) MNIST digits -> black-on-white 280 px PNGs, like the page's canvas."""
    out = []
    for digit in images:
        buf = io.BytesIO()
        Image.fromarray(255 - np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR))).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def multipart(png: bytes) -> tuple[bytes, str]:
    """(body, content type) of a form with one file field `image`."""
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="digit.png"\r\n'
    head += "Content-Type: image/png\r\n\r\n"
    return head.encode() + png + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def start_server(checkpoint: Path, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """`mnist serve --port 0` as a subprocess on 127.0.0.1; (process, the port it printed)."""
    cmd = [sys.executable, "-m", "mnist_cli", "serve", "--port", "0", "-m", str(checkpoint)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    timer = threading.Timer(120, proc.kill)
    timer.start()
    line = proc.stdout.readline()
    timer.cancel()
    if "http://127.0.0.1:" not in line:
        proc.kill()
        raise RuntimeError(f"mnist serve did not start: {line!r}")
    return proc, int(line.split("http://127.0.0.1:")[1].split("/")[0])


def load(port: int, pngs: list[bytes], requests: int, clients: int, deadline_s: float) -> dict:
    """Send `requests` POST /api/predict from `clients` threads (one keep-alive connection each)."""
    bodies = [multipart(p) for p in pngs]
    counter = itertools.count()
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline_s

    def client() -> tuple[list[float], int]:
        latencies, errors = [], 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        while time.monotonic() < stop_at:
            with lock:
                i = next(counter)
            if i >= requests:
                break
            body, ctype = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/api/predict", body=body, headers={"content-type": ctype})
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
            latencies.append(time.perf_counter() - t0)
            errors += not ok
        conn.close()
        return latencies, errors

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: client(), range(clients)))
    wall = time.perf_counter() - t0
    latencies = np.array([x for lat, _ in results for x in lat]) * 1000  # ms
    return {
        "requests": len(latencies),
        "clients": clients,
        "errors": sum(e for _, e in results),
        "seconds": wall,
        "requests_per_second": len(latencies) / wall,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "max_ms": float(latencies.max()),
        "target": "no errors, p99 < 100 ms",
        "met": bool(sum(e for _, e in results) == 0 and np.percentile(latencies, 99) < 100 and len(latencies) == requests),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_load(checkpoint: Path, images: np.ndarray, env: dict[str, str], requests=500, clients=8, deadline_s=120.0) -> dict:
    """Start `mnist serve`, warm it up, load it, stop it with Ctrl-C; the load figures."""
    pngs = digit_pngs(images)
    proc, port = start_server(checkpoint, env)
    try:
        load(port, pngs, requests=clients * 2, clients=clients, deadline_s=30)  # warm-up: threads, first calls
        # One client, one request at a time: a request's own latency, with no queue (a keep-alive stall shows here).
        alone = load(port, pngs, requests=100, clients=1, deadline_s=30)
        cpu = cpu_seconds(proc.pid)
        result = load(port, pngs, requests, clients, deadline_s)
        result["server_cpu_ms_per_request"] = 1000 * (cpu_seconds(proc.pid) - cpu) / result["requests"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    result["one_client_p50_ms"], result["one_client_p99_ms"] = alone["p50_ms"], alone["p99_ms"]
    result["server_threads"] = "1 torch thread per request, as many at once as the machine has cores (at most 4)"
    result["cores"] = os.cpu_count()
    return result
