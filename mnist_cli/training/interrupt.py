"""Stopping a run gracefully: Ctrl-C, SIGTERM (timeout, docker stop, Kubernetes, Slurm) and SIGHUP (a closed terminal).

The first asks the loop to stop after the current step (it saves last.pt); a second quits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

# Signals that stop a run the way the first Ctrl-C does; SIGHUP does not exist on Windows.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopRequest:
    """Callable flag the training loop polls after every step; `signal` is the signal that set it."""

    signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        """128 + the signal, what shells report for a program a signal ended: 130, 143 (SIGTERM), 129 (SIGHUP)."""
        return 128 + (self.signal or signal.SIGINT)


@contextlib.contextmanager
def graceful_stop(notice: str) -> Iterator[StopRequest]:
    """While inside, SIGINT, SIGTERM and SIGHUP set the returned flag (and write `notice` to stderr); a second raises
    KeyboardInterrupt."""
    request = StopRequest()

    def handler(signum, frame) -> None:
        if request():
            raise KeyboardInterrupt
        request.signal = signum
        # os.write, not print: a handler can run while the main thread is inside a buffered write to stderr.
        # A hung-up terminal or a closed pipe takes no notice; the stop still happens.
        with contextlib.suppress(OSError):
            os.write(2, f"\n{signal.Signals(signum).name}: {notice}\n".encode())

    if threading.current_thread() is not threading.main_thread():
        yield request  # signals reach only the main thread; nothing to install
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield request
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
